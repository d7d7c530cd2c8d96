"""iaside models: list the accepted model specs, or load one and show what it will be fed."""

NAME = "models"
HELP = "list the built-in models and the accepted --model forms; --check MODEL loads one and prints its data config"


def add_arguments(parser) -> None:
    from .run import add_model_arguments

    parser.add_argument(
        "--check",
        action="store_true",
        help="load --model and print its class count and resolved data config with every field's "
        "source (runs nothing else)",
    )
    add_model_arguments(parser)
    for action in parser._actions:  # --model is needed only with --check
        if "--model" in action.option_strings:
            action.required = False


def check(args) -> int:
    """Load the model and print K, the class names' origin and the data config field by field."""
    from ..config import DATA_FIELDS
    from ..errors import IasideError
    from ..models import load_model
    from .run import model_options

    if not args.model:
        raise IasideError("--check needs --model MODEL (e.g. --model hf:./my-vit)")
    loaded = load_model(args.model, device=args.device, **model_options(args))
    names = loaded.model.class_names
    print(f"{loaded.spec}  source={loaded.source}  fingerprint={loaded.fingerprint}")
    print(
        f"classes: {loaded.model.num_classes}"
        + (f" (names: {names[0]!r}, {names[1]!r}, ...)" if names and len(names) > 1 else " (no class names)")
    )
    print(f"outputs: {loaded.model.outputs}")
    config, sources = loaded.data_config.to_dict(), loaded.data_config.sources or {}
    width = max(map(len, DATA_FIELDS))
    for key in DATA_FIELDS:
        value = config[key]
        text = ",".join(f"{v:.4g}" for v in value) if key in ("mean", "std") else str(value)
        print(f"  {key:<{width}}  {text:<24}  from {sources.get(key, '?')}")
    print("preprocessing: " + loaded.data_config.pipeline())
    return 0


def run(args) -> int:
    from ..models.registry import accepted_forms, available_models

    if args.check or args.model:
        return check(args)
    for name in available_models():
        print(name)
    print("also:", ", ".join(form for form in accepted_forms() if ":" in form))
    return 0
