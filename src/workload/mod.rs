//! Workloads: which operations a run issues, and when. A workload is data (`workloads/*.toml`:
//! the key distribution and its defaults) resolved with the command line's `--rate`,
//! `--write-ratio`, `--max-key`, `--payload-size`, `--arrival-process`, `--duration` and
//! `--seed` into a [`Schedule`]: a deterministic sequence of timed operations, the same for the
//! same seed, spread over the clients in turn (as reckon does).

use std::path::Path;

use crate::catalog::{Catalog, CatalogError};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

pub static CATALOG: Catalog = Catalog {
    kind: "workload",
    plural: "workloads",
    dir: "workloads",
    flag: "",
    builtin: BUILTIN,
};

const BUILTIN: &[(&str, &str)] = &[("uniform", include_str!("../../workloads/uniform.toml"))];

/// How operation times are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced, 1/rate apart.
    Uniform,
    /// A Poisson process: exponential gaps with mean 1/rate.
    Poisson,
}

/// A workload file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    /// For people reading the file; accepted and not used.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    keys: String,
    write_ratio: f64,
    max_key: u64,
    payload_size: usize,
}

/// A resolved workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub rate: f64,
    pub write_ratio: f64,
    pub max_key: u64,
    pub payload_size: usize,
    pub arrival: Arrival,
    /// Seconds.
    pub duration: f64,
    pub seed: u64,
}

/// What the command line may override.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub rate: Option<f64>,
    pub write_ratio: Option<f64>,
    pub max_key: Option<u64>,
    pub payload_size: Option<usize>,
    pub arrival: Option<Arrival>,
    pub duration: Option<f64>,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Bad(String),
}

/// Resolve a built-in workload by name.
pub fn builtin(name: &str, o: &Overrides) -> Result<Workload, WorkloadError> {
    let src = CATALOG.builtin(name)?;
    parse(&src.name, &src.file, &src.text, o)
}

/// Read a user's workload file; its name is the file's stem.
pub fn from_file(path: &Path, o: &Overrides) -> Result<Workload, WorkloadError> {
    let src = CATALOG.file(path)?;
    parse(&src.name, &src.file, &src.text, o)
}

fn parse(name: &str, file: &str, src: &str, o: &Overrides) -> Result<Workload, WorkloadError> {
    let f: WorkloadFile = toml::from_str(src).map_err(|e| {
        let (line, message) = crate::toml_error(src, &e);
        WorkloadError::Invalid {
            file: file.into(),
            line,
            message,
        }
    })?;
    if f.keys != "uniform" {
        return Err(WorkloadError::Invalid {
            file: file.into(),
            line: 1,
            message: format!("keys = \"{}\": the key distributions are: uniform", f.keys),
        });
    }
    let w = Workload {
        name: name.into(),
        rate: o.rate.unwrap_or(100.0),
        write_ratio: o.write_ratio.unwrap_or(f.write_ratio),
        max_key: o.max_key.unwrap_or(f.max_key),
        payload_size: o.payload_size.unwrap_or(f.payload_size),
        arrival: o.arrival.unwrap_or(Arrival::Uniform),
        duration: o.duration.unwrap_or(60.0),
        seed: o.seed,
    };
    w.validate()?;
    Ok(w)
}

impl Workload {
    /// Refuse what cannot run, naming the flag.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let bad = |m: String| Err(WorkloadError::Bad(m));
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1e6) {
            return bad(format!(
                "--rate {}: give operations per second, more than 0 and at most 1000000",
                self.rate
            ));
        }
        if !(self.write_ratio.is_finite() && (0.0..=1.0).contains(&self.write_ratio)) {
            return bad(format!(
                "--write-ratio {}: give the share of writes, between 0 and 1",
                self.write_ratio
            ));
        }
        if self.max_key > 100_000_000 {
            return bad(format!(
                "--max-key {}: at most 100000000 (every key is written before the run)",
                self.max_key
            ));
        }
        if self.payload_size > 1 << 20 {
            return bad(format!(
                "--payload-size {}: at most 1048576 bytes",
                self.payload_size
            ));
        }
        if !(self.duration.is_finite() && self.duration > 0.0 && self.duration <= 86_400.0) {
            return bad(format!(
                "--duration {}: give seconds, more than 0 and at most 86400",
                self.duration
            ));
        }
        Ok(())
    }

    fn key_width(&self) -> usize {
        self.max_key.to_string().len()
    }

    /// A key, zero-padded like reckon's.
    pub fn key(&self, k: u64) -> String {
        format!("{k:0width$}", width = self.key_width())
    }

    /// The value of the write at schedule index `n`: `payload_size` lowercase letters, the first
    /// [`TAG_LETTERS`] of them (or all, if fewer) spelling `n` in base 26 and the rest random
    /// from `r` — reckon's random payload, made unique so that a read tells which write it
    /// saw (`reckon check`; unique while `payload_size >= 7` or the run has fewer than
    /// 26^payload_size operations).
    pub fn value(&self, n: u64, r: &mut impl rand::Rng) -> String {
        let tag = self.payload_size.min(TAG_LETTERS);
        let mut v = vec![b'a'; self.payload_size];
        let mut rest = n;
        for i in (0..tag).rev() {
            v[i] = b'a' + (rest % 26) as u8;
            rest /= 26;
        }
        for c in &mut v[tag..] {
            *c = b'a' + r.random_range(0..26u8);
        }
        String::from_utf8(v).expect("letters")
    }

    /// The prerequisites: every key, written once (empty value) before the run.
    pub fn prerequisites(&self) -> impl Iterator<Item = String> + '_ {
        (0..=self.max_key).map(|k| self.key(k))
    }

    /// The run's operations in time order, each with the client (0..clients) that issues it.
    pub fn schedule(&self, clients: usize) -> Schedule<'_> {
        let mut seed_rng = Xoshiro256PlusPlus::seed_from_u64(self.seed ^ 0x5eed_0f_0e5);
        Schedule {
            w: self,
            clients: clients.max(1),
            only: None,
            n: 0,
            t: 0.0,
            times: Xoshiro256PlusPlus::seed_from_u64(seed_rng.random()),
            ops_seed: seed_rng.random(),
            exp: Exp::new(self.rate).expect("validated rate"),
        }
    }

    /// The operations of client `client` alone (of `clients`): the same as its share of
    /// [`Workload::schedule`], without making the others'.
    pub fn schedule_for(&self, clients: usize, client: usize) -> Schedule<'_> {
        Schedule {
            only: Some(client),
            ..self.schedule(clients)
        }
    }

    /// How many operations the schedule has (uniform arrivals); an estimate for Poisson.
    pub fn expected_ops(&self) -> u64 {
        (self.rate * self.duration).ceil() as u64
    }
}

/// What an operation does.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Write { key: String, value: String },
    Read { key: String },
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Write { .. } => "write",
            Op::Read { .. } => "read",
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Op::Write { key, .. } | Op::Read { key } => key,
        }
    }
}

/// Letters of a write's value that spell its schedule index: 26^7 = 8 billion operations.
pub const TAG_LETTERS: usize = 7;

/// One scheduled operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    /// Its index in the schedule.
    pub n: u64,
    /// Seconds from the start of the run.
    pub time: f64,
    pub client: usize,
    pub op: Op,
}

/// The run's operations, generated lazily: the same seed gives the same sequence. An
/// operation's content comes from a generator of its own, seeded by its index, so one client's
/// share is made without making the others' operations.
pub struct Schedule<'w> {
    w: &'w Workload,
    clients: usize,
    /// Only this client's operations.
    only: Option<usize>,
    n: u64,
    t: f64,
    times: Xoshiro256PlusPlus,
    ops_seed: u64,
    exp: Exp<f64>,
}

impl Iterator for Schedule<'_> {
    type Item = Scheduled;

    fn next(&mut self) -> Option<Scheduled> {
        loop {
            let time = match self.w.arrival {
                Arrival::Uniform => self.n as f64 / self.w.rate,
                Arrival::Poisson => {
                    let t = self.t;
                    self.t += self.exp.sample(&mut self.times);
                    t
                }
            };
            if time >= self.w.duration {
                return None;
            }
            let n = self.n;
            self.n += 1;
            let client = (n % self.clients as u64) as usize;
            if self.only.is_some_and(|c| c != client) {
                continue;
            }
            let mut r = Xoshiro256PlusPlus::seed_from_u64(self.ops_seed ^ n);
            let key = self.w.key(r.random_range(0..=self.w.max_key));
            let op = if r.random::<f64>() < self.w.write_ratio {
                Op::Write {
                    key,
                    value: self.w.value(n, &mut r),
                }
            } else {
                Op::Read { key }
            };
            return Some(Scheduled {
                n,
                time,
                client,
                op,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(arrival: Arrival) -> Workload {
        builtin(
            "uniform",
            &Overrides {
                rate: Some(200.0),
                write_ratio: Some(0.5),
                max_key: Some(250),
                duration: Some(5.0),
                arrival: Some(arrival),
                seed: 42,
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn keys_are_zero_padded_like_reckon() {
        let w = w(Arrival::Uniform);
        assert_eq!(w.key(7), "007");
        assert_eq!(w.prerequisites().count(), 251);
        assert!(w
            .schedule(3)
            .all(|s| s.op.key().len() == 3 && s.op.key().parse::<u64>().unwrap() <= 250));
    }

    #[test]
    fn uniform_arrivals_are_evenly_spaced_and_spread_over_clients() {
        let w = w(Arrival::Uniform);
        let s: Vec<_> = w.schedule(3).collect();
        assert_eq!(s.len(), 1000);
        assert!((s[10].time - 0.05).abs() < 1e-12);
        assert_eq!(s.iter().filter(|o| o.client == 2).count(), 333);
        let writes = s
            .iter()
            .filter(|o| matches!(o.op, Op::Write { .. }))
            .count();
        assert!((400..600).contains(&writes), "{writes}");
        assert!(s.iter().all(|o| match &o.op {
            Op::Write { value, .. } =>
                value.len() == 10 && value.chars().all(|c| c.is_ascii_lowercase()),
            _ => true,
        }));
        // Every write's value is its own.
        let values: std::collections::HashSet<&str> = s
            .iter()
            .filter_map(|o| match &o.op {
                Op::Write { value, .. } => Some(value.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(values.len(), writes);
    }

    #[test]
    fn a_clients_share_is_the_same_alone() {
        for a in [Arrival::Uniform, Arrival::Poisson] {
            let w = w(a);
            let all: Vec<_> = w.schedule(3).filter(|s| s.client == 1).collect();
            assert_eq!(all, w.schedule_for(3, 1).collect::<Vec<_>>());
        }
    }

    #[test]
    fn poisson_arrivals_have_the_rate() {
        let s: Vec<_> = w(Arrival::Poisson).schedule(1).collect();
        assert!((900..1100).contains(&s.len()), "{}", s.len());
        assert!(s.windows(2).all(|p| p[1].time >= p[0].time));
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        for a in [Arrival::Uniform, Arrival::Poisson] {
            let x: Vec<_> = w(a).schedule(2).collect();
            assert_eq!(x, w(a).schedule(2).collect::<Vec<_>>());
            let mut other = w(a);
            other.seed = 43;
            assert_ne!(x, other.schedule(2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn bad_values_name_their_flag() {
        let o = |f: fn(&mut Overrides)| {
            let mut o = Overrides::default();
            f(&mut o);
            builtin("uniform", &o).unwrap_err().to_string()
        };
        assert!(o(|o| o.rate = Some(0.0)).contains("--rate 0"));
        assert!(o(|o| o.write_ratio = Some(1.5)).contains("--write-ratio 1.5"));
        assert!(o(|o| o.duration = Some(-1.0)).contains("--duration -1"));
        assert!(builtin("zipf", &Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("known workloads: uniform"));
    }
}
