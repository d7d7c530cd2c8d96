"""iaside explain-image: one image's band images, its own φ over bands, and the coalitions that decide its prediction."""
NAME = "explain-image"
HELP = "explain one image: its band images, its φ over bands, and the coalition that keeps or flips its prediction"


def add_arguments(parser) -> None:
    parser.add_argument("image")


def run(args) -> int:
    raise SystemExit("not yet")
