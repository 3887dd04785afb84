#!/usr/bin/env python3
"""Copy the model cases of chosen families from a fixture root into tests/data/fixtures/.

The copy is a fixture root of its own (manifest.json listing only those cases), so
`lumen verify tests/data/fixtures` and the test suite run it without ../shared.
Usage: scripts/copy_fixtures.py ../shared/fixtures/public clip siglip
"""
import json
import shutil
import sys
from pathlib import Path


def main() -> None:
    src = Path(sys.argv[1])
    families = set(sys.argv[2:])
    dst = Path(__file__).resolve().parent.parent / "tests" / "data" / "fixtures"
    manifest = json.loads((src / "manifest.json").read_text())
    old = json.loads((dst / "manifest.json").read_text()) if (dst / "manifest.json").exists() else {"cases": []}
    keep = [c for c in old["cases"] if c["family"] not in families]
    chosen = [c for c in manifest["cases"] if c["family"] in families]
    for case in chosen:
        for key in ("model", "inputs", "expected"):
            path = src / case[key]
            target = dst / case[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(path, target)
    out = {"generator": manifest.get("generator"), "cases": keep + chosen,
           "note": "subset of " + str(src) + " copied by scripts/copy_fixtures.py"}
    (dst / "manifest.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(chosen)} cases of {sorted(families)} copied to {dst}")


if __name__ == "__main__":
    main()
