"""``python -m logtv.bench [OPTIONS]``: ``logtv bench`` with the same options, and ``--sustained``.

``--sustained`` runs only the sustained fan-out search (:mod:`logtv.bench.sustained`). It is
taken off the command line here and the rest is parsed by ``logtv bench``'s own parser, so the
two never disagree about the other options.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from logtv.bench.runner import main as run_bench
from logtv.cli import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    sustained = "--sustained" in words
    args = build_parser().parse_args(["bench", *(word for word in words if word != "--sustained")])
    args.sustained = sustained or bool(getattr(args, "sustained", False))
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
