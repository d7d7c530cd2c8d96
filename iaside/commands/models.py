"""iaside models: list the built-in models and the accepted model specs."""
NAME = "models"
HELP = "list the built-in models and the accepted --model forms"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from ..models.registry import accepted_forms, available_models

    for name in available_models():
        print(name)
    print("also:", ", ".join(form for form in accepted_forms() if ":" in form))
    return 0
