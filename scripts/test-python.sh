#!/usr/bin/env bash
# The Python module's test: build the wheel (maturin, the `python` cargo feature), install it in
# a virtual environment of its own (target/pyvenv, with pandas), and run tests/python as root.
# `make test` calls it after the Rust tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/pyvenv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" pandas
rm -f target/wheels/reckon-*.whl
"$VENV/bin/maturin" build --release --out target/wheels
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/reckon-*.whl
# Run from the tests' folder so `import reckon` is the installed module, not a source folder.
cd tests/python
exec "../../$VENV/bin/python" -m unittest -v test_reckon
