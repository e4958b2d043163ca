"""Runs CLI cases for tests/test_fuzz.py in one process: ``python tests/fuzz_worker.py CASES OUT``.

Each case is ``{"files": {name: text | {"b64": ...}}, "fifos": [name], "argv": [...]}``; its
files are written into a fresh folder, which becomes the working directory, and ``argv`` runs
through ``resbench.cli.main`` as the ``resbench`` command would. One JSON line per case goes to
OUT *before* it runs (so a hang or a kill names the case) and one after: its exit status,
stderr and seconds. The test runs this under an address-space limit and a timeout."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback


def run_case(case: dict, folder: str) -> tuple[object, str]:
    for name, content in case.get("files", {}).items():
        data = (base64.b64decode(content["b64"]) if isinstance(content, dict)
                else content.encode("utf-8", "surrogatepass"))
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)
    for name in case.get("fifos", []):
        os.mkfifo(os.path.join(folder, name))
    from resbench.cli import main

    err = io.StringIO()
    # stdout as a terminal has it (surrogateescape), so printing what cannot be printed fails here too
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=sys.stdout.errors)
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code: object = main(case["argv"])
            out.flush()
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - what the fuzz test looks for
        code = "traceback"
        err.write(traceback.format_exc())
    return code, err.getvalue()


def main() -> None:
    cases = json.load(open(sys.argv[1]))
    with open(sys.argv[2], "w") as log:
        for i, case in enumerate(cases):
            log.write(json.dumps({"start": i}) + "\n")
            log.flush()
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                code, err = run_case(case, folder)
            err = err if len(err) < 3000 else f"{err[:1500]}\n[...]\n{err[-1500:]}"
            log.write(json.dumps({"case": i, "code": code, "stderr": err,
                                  "seconds": round(time.perf_counter() - start, 2)}) + "\n")
            log.flush()


if __name__ == "__main__":
    main()
