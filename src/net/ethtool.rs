//! Transmit checksum offload, switched off on every veth end. With OVS's userspace datapath a
//! veth that offloads tx checksums sends TCP segments with unfilled checksums that the receiver
//! drops: ping works, TCP silently does not. (`ethtool -K <if> tx off`, as an ioctl.)

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// A socket for ethtool ioctls in the calling thread's network namespace.
pub struct Ethtool(OwnedFd);

impl Ethtool {
    pub fn open() -> io::Result<Ethtool> {
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Ethtool(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn call(&self, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
        let bytes = ifname.as_bytes();
        if bytes.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name {ifname} too long"),
            ));
        }
        let mut value = EthtoolValue { cmd, data };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: &mut value as *mut _ as *mut libc::c_void,
            _pad: [0; 16],
        };
        req.name[..bytes.len()].copy_from_slice(bytes);
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(value.data)
    }

    /// Switch tx checksum offload off on `ifname` and confirm it took.
    pub fn tx_checksum_off(&self, ifname: &str) -> io::Result<()> {
        self.call(ifname, ETHTOOL_STXCSUM, 0).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("turn off tx checksum offload on {ifname}: {e}"),
            )
        })?;
        if self.tx_checksum(ifname)? {
            return Err(io::Error::other(format!(
                "tx checksum offload on {ifname} is still on after switching it off"
            )));
        }
        Ok(())
    }

    /// Whether tx checksum offload is on.
    pub fn tx_checksum(&self, ifname: &str) -> io::Result<bool> {
        Ok(self.call(ifname, ETHTOOL_GTXCSUM, 0)? != 0)
    }
}
