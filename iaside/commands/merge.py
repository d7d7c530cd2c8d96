"""iaside merge: add the saved states of shards (or partial runs) into one result."""

from pathlib import Path

NAME = "merge"
HELP = "combine the states of shard runs of one configuration into one result"


def add_arguments(parser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, help="--out folders of the shards (or one folder holding them)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged result")


def run(args) -> int:
    from ..merge import merge_runs

    result = merge_runs(args.run_dirs, args.out)
    print(result.table())
    print(f"wrote {args.out}/result.json, per_image.npz, sid.png")
    return 0
