"""``python -m training``: synthesize, download, build, train, and manage models.

Every command ends with one result on stdout (JSON where it is data), logs go to
stderr, and a failure is one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from core.cli import ArgumentParser, add_settings_arguments, settings_from_args
from core.commands import EXIT_NOT_SERVABLE, print_json, run_command
from training.settings import TrainingSettings

log = logging.getLogger("training")


def _synthesize(args: argparse.Namespace) -> int:
    from training.synthetic import DriftKind, synthesize

    files = synthesize(
        args.out,
        accidents=args.accidents,
        seed=args.seed,
        year=args.year,
        drift=DriftKind(args.drift) if args.drift else None,
    )
    print_json({table: str(path) for table, path in files.items()})
    return 0


def _download(args: argparse.Namespace) -> int:
    from training.download import download_year

    files = download_year(args.year, args.out)
    print_json({table: str(path) for table, path in files.items()})
    return 0


def _build(args: argparse.Namespace) -> int:
    from training.dataset import build_dataset

    print_json(build_dataset(args.raw, args.out, seed=args.seed))
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.train import summary_json, train

    summary = train(settings_from_args(TrainingSettings, args))
    print(summary_json(summary))
    return EXIT_NOT_SERVABLE if summary.get("servable") is False else 0


def _wait_for_storage(args: argparse.Namespace) -> int:
    from core.storage import wait_until_usable

    settings = settings_from_args(TrainingSettings, args)
    waited = wait_until_usable(settings.registry_uri, timeout=args.timeout)
    print_json({"registry": settings.registry_uri, "waited_seconds": round(waited, 1)})
    return 0


def _models(args: argparse.Namespace) -> int:
    from core.registry import Registry
    from core.storage import open_storage

    settings = settings_from_args(TrainingSettings, args)
    registry = Registry(
        open_storage(settings.registry_uri, max_attempts=settings.storage_attempts),
        settings.model_name,
    )
    if args.models_command == "list":
        production = registry.alias_version()
        rows = []
        for version in registry.versions():
            manifest = registry.manifest(version)
            rows.append(
                {
                    "version": version,
                    "production": version == production,
                    "created_at": manifest.get("created_at"),
                    "model_kind": manifest.get("model_kind"),
                    "roc_auc": manifest.get("metrics", {}).get("roc_auc"),
                    "data_fingerprint": manifest.get("data", {}).get("fingerprint", "")[:12],
                }
            )
        print_json({"model": settings.model_name, "production": production, "versions": rows})
    elif args.models_command == "show":
        print_json(registry.manifest(args.version))
    else:
        print_json(registry.promote(args.version, reason=args.reason))
    return 0


# The flags every command had before they were generated from the settings.
ALIASES = {"registry_uri": ["--registry"], "raw_uri": ["--raw"]}
# The settings of the command that manages the registry's versions.
REGISTRY_SETTINGS = ("registry_uri", "model_name", "storage_attempts")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synthesize", help="write synthetic BAAC tables (original format)")
    synth.add_argument("--out", type=Path, required=True, help="folder to write the tables to")
    synth.add_argument("--accidents", type=int, default=56_000, help="accidents (default 56000)")
    synth.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    synth.add_argument("--year", type=int, default=2021, help="file layout year (default 2021)")
    synth.add_argument("--drift", default=None, help="generate drifted data of this kind")
    synth.set_defaults(handler=_synthesize)

    download = commands.add_parser("download", help="download a year's tables from data.gouv.fr")
    download.add_argument("--year", type=int, required=True)
    download.add_argument("--out", type=Path, required=True)
    download.set_defaults(handler=_download)

    build = commands.add_parser("build", help="build the modelling dataset; prints its summary")
    build.add_argument("--raw", type=Path, required=True, help="folder with the BAAC tables")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.add_argument("--seed", type=int, default=42, help="split seed (default 42)")
    build.set_defaults(handler=_build)

    train = commands.add_parser(
        "train",
        help="train, evaluate, publish and maybe promote a model",
        description="Options left out are read from TRAINING_* environment variables.",
    )
    add_settings_arguments(train, TrainingSettings, aliases=ALIASES)
    train.set_defaults(handler=_train)

    wait = commands.add_parser(
        "wait-for-storage",
        help="wait until the registry's storage answers (its bucket exists and is readable)",
    )
    add_settings_arguments(wait, TrainingSettings, only=("registry_uri",), aliases=ALIASES)
    wait.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    wait.set_defaults(handler=_wait_for_storage)

    models = commands.add_parser("models", help="list, show and promote registry versions")
    add_settings_arguments(models, TrainingSettings, only=REGISTRY_SETTINGS, aliases=ALIASES)
    models_commands = models.add_subparsers(dest="models_command", required=True)
    models_commands.add_parser("list", help="every version, production marked")
    show = models_commands.add_parser("show", help="a version's manifest")
    show.add_argument("version")
    promote = models_commands.add_parser("promote", help="point production at a version")
    promote.add_argument("version")
    promote.add_argument("--reason", default="manual promotion", help="recorded in the alias")
    models.set_defaults(handler=_models)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)
