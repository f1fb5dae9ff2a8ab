"""Prints each function's bootstrap from `sam build` with its zipped size (as Lambda receives it).

    python3 infra/package-sizes.py [.aws-sam/build] [--tsv]

--tsv prints `function<TAB>bytes<TAB>zipped bytes` lines for make bench.
"""

import io
import pathlib
import sys
import zipfile

args = [a for a in sys.argv[1:] if a != "--tsv"]
tsv = "--tsv" in sys.argv[1:]
build = pathlib.Path(args[0] if args else ".aws-sam/build")
binaries = sorted(build.glob("*/bootstrap"))
if not binaries:
    sys.exit(f"no bootstrap under {build}: run sam build first")
if not tsv:
    print(f"{'function':28} {'bootstrap':>10} {'zipped':>10}")
for path in binaries:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, "bootstrap")
    size, zipped = path.stat().st_size, len(buffer.getvalue())
    if tsv:
        print(f"{path.parent.name}\t{size}\t{zipped}")
    else:
        print(f"{path.parent.name:28} {size / 1e6:8.2f} MB {zipped / 1e6:8.2f} MB")
