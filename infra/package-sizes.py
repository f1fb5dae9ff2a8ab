"""Prints each function's bootstrap from `sam build` with its zipped size (as Lambda receives it)."""

import io
import pathlib
import sys
import zipfile

build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build")
binaries = sorted(build.glob("*/bootstrap"))
if not binaries:
    sys.exit(f"no bootstrap under {build}: run sam build first")
print(f"{'function':28} {'bootstrap':>10} {'zipped':>10}")
for path in binaries:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, "bootstrap")
    print(f"{path.parent.name:28} {path.stat().st_size / 1e6:8.2f} MB {len(buffer.getvalue()) / 1e6:8.2f} MB")
