"""The Python module end to end: bad input is refused before anything is built, a short run
gives its summary, tables pandas reads with the right types, plots and a report, Ctrl-C tears
down, a sweep runs its runs (processes running the module's command line) and resumes, and
nothing of the network is left.

Needs root, Open vSwitch, etcd and the module installed (scripts/test-python.sh does it all).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import pandas as pd

import reckon

PREFIX = "ypy"


def leftovers(prefix):
    """Namespaces, links and bridges carrying `prefix`, and its registry entry."""
    left = []
    for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith(prefix + "-") or line.startswith(prefix + "."):
            left.append("netns " + line.split()[0])
    for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines():
        name = line.split(": ")[1].split("@")[0]
        if name.startswith(prefix + "-"):
            left.append("link " + name)
    for line in subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith(prefix + "-"):
            left.append("bridge " + line)
    if Path(f"/run/reckon/{prefix}.json").exists():
        left.append("registry entry")
    return left


class ReckonModule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Leftovers of an earlier, crashed run of these tests (only networks nobody owns).
        subprocess.run([sys.executable, "-m", "reckon", "clean", "--only", PREFIX], check=True,
                       capture_output=True)
        cls.tmp = Path(tempfile.mkdtemp(prefix="reckon-py-"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertEqual(leftovers(PREFIX), [], "the run left these behind")

    def test_parameters_are_the_command_lines(self):
        params = reckon.parameters()
        for name in ["system", "duration", "link_loss", "link_latency", "rate", "seed",
                     "allow_no_quorum", "result_location"]:
            self.assertIn(name, params)
        self.assertIn("percent", params["link_loss"])
        self.assertNotIn("debug", params)

    def test_bad_input_is_refused_before_anything_is_built(self):
        out = self.tmp / "bad"
        with self.assertRaisesRegex(TypeError, "'lnk_loss'.*did you mean 'link_loss'"):
            reckon.run(lnk_loss=1, result_location=out, prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "--link-loss 150: give a percentage"):
            reckon.run(link_loss=150, result_location=out, prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "unknown system 'nosuch'"):
            reckon.run(system="nosuch", result_location=out, prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "invalid value 'fast' for '--rate"):
            reckon.run(rate="fast", result_location=out, prefix=PREFIX)
        with self.assertRaisesRegex(TypeError, "allow_no_quorum is a switch"):
            reckon.run(allow_no_quorum=1, result_location=out, prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "unknown parameter 'lnk_loss'"):
            reckon.sweep({"fixed": {"system": "etcd"}, "grid": {"lnk_loss": [1]}},
                         out=self.tmp / "badsweep", prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "the grid is empty"):
            reckon.sweep({"fixed": {"system": "etcd"}, "grid": {}}, out=self.tmp / "badsweep",
                         prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "--shard 3/2: write i/n"):
            reckon.sweep({"fixed": {"system": "etcd", "topology": "wan", "workload": "uniform",
                                    "fault": "none"}, "grid": {"rate": [1]}},
                         out=self.tmp / "badsweep", shard=(3, 2), prefix=PREFIX)
        with self.assertRaisesRegex(ValueError, "no results here"):
            reckon.load(self.tmp)
        self.assertFalse(out.exists(), "a refused run wrote nothing")
        self.assertFalse((self.tmp / "badsweep").exists(), "a refused sweep wrote nothing")

    def test_a_short_run_gives_summary_tables_plots_and_report(self):
        out = self.tmp / "run"
        r = reckon.run(system="etcd", topology="wan", workload="uniform",
                       fault="partial-partition", duration=3, rate=50, write_ratio=0.5,
                       result_location=out, prefix=PREFIX)
        self.assertEqual(r.dir, out)
        s = r.summary
        self.assertEqual(s["ops"], 150)
        self.assertEqual([p["name"] for p in s["phases"]], ["before", "during", "after"])
        self.assertEqual(r.config["workload"]["rate"], 50.0)
        self.assertEqual(r.config["fault"]["name"], "partial-partition")
        # Every operation, typed for pandas; latency from the intended start crosses the WAN.
        ops = pd.DataFrame(r.ops)
        self.assertEqual(len(ops), 150)
        self.assertEqual(str(ops["ok"].dtype), "bool")
        self.assertEqual(str(ops["intended"].dtype), "float64")
        self.assertTrue(all(isinstance(k, str) for k in ops["key"]), "keys stay names")
        self.assertEqual(set(ops["kind"]), {"read", "write"})
        self.assertEqual(int(ops["ok"].sum()), s["ok"])
        by_column = pd.DataFrame(r.table("ops", columns=True))
        pd.testing.assert_frame_equal(by_column, ops)
        with self.assertRaisesRegex(ValueError, "table 'nosuch': give one of ops"):
            r.table("nosuch")
        latency = ops[ops["ok"]]["done"] - ops[ops["ok"]]["intended"]
        self.assertGreater(latency.median(), 0.001)
        # The partition really happened: cut at T/3, healed at 2T/3.
        faults = pd.DataFrame(r.faults)
        self.assertEqual(list(faults["action"]), ["partition", "heal"])
        self.assertAlmostEqual(faults["applied"][0], 1.0, delta=0.05)
        self.assertGreater(len(r.timeseries), 20)
        for kind in ["latency", "throughput", "cdf"]:
            self.assertGreater(r.plots[kind]["png"].stat().st_size, 10_000, kind)
            self.assertIn("<svg", r.plots[kind]["svg"].read_text())
        self.assertIn("latency-all", r.histograms)
        self.assertIn("h1", r.logs)
        html = r.report()
        self.assertIn("etcd / wan / uniform / partial-partition", html.read_text())
        # load() gives the same run back.
        again = reckon.load(out)
        self.assertIsInstance(again, reckon.Run)
        self.assertEqual(again.summary, s)
        self.assertEqual(again.ops, r.ops)
        with self.assertRaisesRegex(ValueError, "already holds a run's results"):
            reckon.run(duration=1, result_location=out, prefix=PREFIX)

    def test_ctrl_c_stops_the_run_tears_down_and_keeps_its_results(self):
        out = self.tmp / "interrupted"
        # Ctrl-C once operations are flowing (30 recorded). Python's own handler, as in an
        # interactive session (a parent may have started us ignoring it).
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        done = threading.Event()

        def interrupt_when_flowing():
            ops = out / "ops.csv"
            deadline = time.monotonic() + 30
            while not done.is_set() and time.monotonic() < deadline:
                if ops.exists() and len(ops.read_text().splitlines()) > 30:
                    break
                time.sleep(0.1)
            if not done.is_set():
                os.kill(os.getpid(), signal.SIGINT)

        watcher = threading.Thread(target=interrupt_when_flowing)
        watcher.start()
        started = time.monotonic()
        try:
            with self.assertRaises(KeyboardInterrupt):
                reckon.run(fault="none", duration=60, rate=50, result_location=out,
                           prefix=PREFIX)
        finally:
            done.set()
            watcher.join()
            signal.signal(signal.SIGINT, previous)
        self.assertLess(time.monotonic() - started, 40, "stopped well before its 60 s")
        self.assertEqual(leftovers(PREFIX), [], "torn down before KeyboardInterrupt")
        r = reckon.load(out)
        self.assertTrue(r.summary["interrupted"])
        self.assertLess(r.summary["duration"], 30)
        self.assertEqual(len(r.ops), r.summary["ops"])
        self.assertGreater(len(r.ops), 20)
        self.assertIn("interrupted at", repr(r))
        # The next run in this process is not stopped by the Ctrl-C that was dealt with.
        again = reckon.run(fault="none", duration=1, rate=20, result_location=self.tmp / "after",
                           prefix=PREFIX)
        self.assertFalse(again.summary["interrupted"])
        self.assertEqual(again.summary["ops"], 20)

    def test_a_sweep_runs_each_point_resumes_and_loads(self):
        out = self.tmp / "sweep"
        plan = {
            "repeats": 1,
            "fixed": {"system": "etcd", "topology": "wan", "workload": "uniform",
                      "fault": "none", "duration": 2, "rate": 20},
            "grid": {"link_loss": [0, 2]},
        }
        heard = []
        # Each run is the module's command line in a process of its own: no reckon binary is used.
        os.environ["RECKON_BIN"] = "/nonexistent/reckon"
        try:
            s = reckon.sweep(plan, out=out, prefix=PREFIX,
                             progress=lambda k, n, run_id, params, status: heard.append((k, n, status)))
        finally:
            del os.environ["RECKON_BIN"]
        self.assertEqual(heard, [(1, 2, "ok"), (2, 2, "ok")])
        self.assertEqual(sorted(s.statuses.values()), ["ok", "ok"])
        results = pd.DataFrame(s.results)
        self.assertEqual(len(results), 2)
        self.assertEqual(sorted(results["link_loss"]), [0, 2])
        self.assertEqual(list(results["ops"]), [40, 40])
        self.assertEqual(str(results["throughput"].dtype), "float64")
        self.assertEqual(len(s.runs), 2)
        # Delete one run: re-running redoes only that one.
        gone = sorted(s.runs)[1]
        shutil.rmtree(out / "runs" / gone)
        again = reckon.sweep(plan, out=out, prefix=PREFIX, progress=False)
        self.assertEqual(again.statuses[gone], "ok")
        self.assertEqual([v for k, v in again.statuses.items() if k != gone], ["done before"])
        loaded = reckon.load(out)
        self.assertIsInstance(loaded, reckon.Sweep)
        self.assertEqual(len(loaded.results), 2)
        self.assertTrue(loaded.report().exists())


if __name__ == "__main__":
    unittest.main()
