# SPDX-License-Identifier: Apache-2.0
"""The process entry point: ``wio`` (console script) and ``python -m wio``.

Kopf imports the ``kubernetes`` and ``pykube`` client libraries when they are installed, only
to recognise their object types; wio never hands it any. Hiding them before Kopf loads saves
about 20 MiB of memory in every operator process. Tests import ``wio.cli`` directly and are
not affected.
"""

from __future__ import annotations

import sys


def main() -> int:
    for unused in ("kubernetes", "pykube"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    from wio.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
