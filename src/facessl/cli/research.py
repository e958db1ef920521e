"""`facessl experiment / pretrain / evaluate / data`: the research commands.

Parsing only, with defaults read from `facessl.config`; each handler builds a config,
calls one typed function and prints what it wrote. Heavy modules (torch) are imported
inside the handlers, so `facessl --help` stays fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facessl.cli.arguments import DATA_HELP, options, shots
from facessl.config import (
    ARMS,
    DETECTORS,
    PRESETS,
    PROTOCOLS,
    TRACKS,
    DataConfig,
    EvaluateConfig,
    ExperimentConfig,
    Preprocessing,
    PretrainConfig,
)
from facessl.models import BACKBONES, backbone
from facessl.ssl import HEAD_METHODS, METHODS

# ---------------------------------------------------------------- handlers


def _experiment(args: argparse.Namespace) -> int:
    from facessl import distributed
    from facessl.config import preset
    from facessl.eval.experiment import check_arms, run_experiment

    config = preset(args.preset)
    check_arms(args.arms, args.methods)
    config.split, config.shots, config.seeds = args.split, args.shots, args.seeds
    config.arms = args.arms
    config.methods, config.data = args.methods, args.data
    for stage in (config.pretext, config.finetune, config.scratch, config.transfer):
        stage.device = args.device
    if args.epochs is not None:
        for stage in (config.finetune, config.scratch, config.transfer):
            stage.epochs = args.epochs
    if args.pretext_epochs is not None:
        config.pretext.epochs = config.method_epochs = args.pretext_epochs
    out = Path(args.out or f"runs/experiment-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    results = run_experiment(config, out, quiet=args.quiet)
    if not args.quiet and distributed.is_main():
        for arm, s in results["summary"].items():
            mean, std = s["final_test_acc"]
            print(f"{arm:>9}: final test accuracy {100 * mean:.1f} ± {100 * std:.1f} %")
        print(f"wrote {out}/report.md, results.json, curves.png"
              f"{', clusters.png' if 'ssl' in config.arms else ''} "
              f"in {time.perf_counter() - started:.0f} s")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from facessl import distributed
    from facessl.ssl.pretrain import run_pretrain

    size = args.size or backbone(args.backbone).input_size  # refuses an unknown backbone
    config = PretrainConfig(method=args.method, backbone=args.backbone, split=args.split,
                            track=args.track, data=args.data, images=args.images,
                            detector=args.detector,
                            seed=args.seed, pool_images=args.pool_images,
                            prep=Preprocessing(size=size),
                            options=options(args.option))
    config.train.device = args.device
    for key in ("epochs", "lr", "batch_size"):
        if getattr(args, key) is not None:
            setattr(config.train, key, getattr(args, key))
    track = "images" if args.images else args.track
    out = Path(args.out or f"runs/pretrain-{args.method}-{args.backbone}-{track}")
    run_pretrain(config, out, quiet=args.quiet)
    if not args.quiet and distributed.is_main():
        print(f"checkpoint: {out}  (evaluate it with: facessl evaluate {out})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from facessl import distributed
    from facessl.eval.label_efficiency import run_evaluate

    config = EvaluateConfig(checkpoint=args.checkpoint, split=args.split, shots=args.shots,
                            seeds=args.seeds, track=args.track, protocols=args.protocols,
                            verification=not args.no_verification, pairs=args.pairs,
                            data=args.data, finetune_epochs=args.finetune_epochs,
                            block=args.block, lfw_crops=args.lfw_crops, device=args.device)
    name = Path(args.checkpoint).name.replace(":", "-")
    out = Path(args.out or f"runs/evaluate-{name}-{args.split}-{args.track}")
    results = run_evaluate(config, out, quiet=args.quiet)
    if not args.quiet and distributed.is_main():
        print(f"wrote {out}/results.json, label_efficiency.png, embedding.png"
              + (", verification_roc.png" if "verification" in results else ""))
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from facessl.data import cache, lfw

    source = lfw.locate(args.data)
    prep = Preprocessing(crop=args.crop, size=args.size, grayscale=args.grayscale)
    built = cache.load_or_build(source, prep)
    print(f"{len(built.paths)} images from {source.path} cached at {built.folder}"
          + (f" ({len(built.truncated)} truncated: {', '.join(built.truncated)})"
             if built.truncated else ""))
    return 0


def _data_manifest(args: argparse.Namespace) -> int:
    from facessl.data import lfw
    from facessl.data.splits import generate_manifest
    from facessl.files import write_json

    source = lfw.locate(args.folder)
    paths = [rel for rel, _ in source.iter_images()]
    manifest = generate_manifest(paths, name=args.name or Path(args.out).stem,
                                 source=source.name, min_images=args.min_images)
    write_json(Path(args.out), manifest)
    print(f"wrote {args.out}: {len(manifest['community'])} people in the community, "
          f"{len(manifest['unlabelled'])} unlabelled images")
    if not manifest["unlabelled"]:
        print("facessl: note: no unlabelled pool (everyone has at least --min-images photos): "
              "the ssl arm and whitened protocols need one; raise --min-images to make one.")
    return 0


# ---------------------------------------------------------------- the parsers


def add_research_commands(sub: argparse._SubParsersAction) -> None:
    """Register experiment, pretrain, evaluate and data on the `facessl` parser."""
    _add_experiment(sub)
    _add_pretrain(sub)
    _add_evaluate(sub)
    _add_data(sub)


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    d = ExperimentConfig()
    exp = sub.add_parser("experiment", help="SSL vs scratch vs transfer learning, over seeds",
                         description="Run the comparison and write report.md, results.json, "
                                     "curves.png and clusters.png to --out.")
    exp.add_argument("--split", default=d.split,
                     help="built-in split name (lfw10-seed-v1, lfw62-v1) or a manifest .json")
    exp.add_argument("--shots", type=shots, default=d.shots,
                     help="labelled images per person (first k of each train list), or 'all'")
    exp.add_argument("--seeds", type=int, nargs="+", default=d.seeds)
    exp.add_argument("--arms", nargs="+", default=d.arms, help=f"any of {' '.join(ARMS)}")
    exp.add_argument("--methods", nargs="+", default=d.methods,
                     help="pretext methods side by side, one ssl arm each (kmeans: the "
                          f"original pixel clustering; any of {', '.join(METHODS)})")
    exp.add_argument("--epochs", type=int,
                     help="epochs on the labelled set for every arm (default: the preset's)")
    exp.add_argument("--pretext-epochs", type=int,
                     help="epochs of every pretext task (default: the preset's; other "
                          f"--methods: {d.method_epochs})")
    exp.add_argument("--preset", default=d.preset, choices=list(PRESETS),
                     help="cpu: measured to finish in minutes on 2 cores; original: the "
                          "original design's budget (hours on a CPU, for a GPU)")
    _data_out_quiet(exp, "output folder (default runs/experiment-<time>)", _experiment)


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    d = PretrainConfig()
    pre = sub.add_parser("pretrain", help="learn a backbone from unlabelled faces",
                         description="Self-supervised pretraining; re-run the same command to "
                                     "resume after an interruption.")
    pre.add_argument("--method", default=d.method,
                     help=f"one of {', '.join((*METHODS, *HEAD_METHODS))}")
    pre.add_argument("--backbone", default=d.backbone, help=f"one of {', '.join(BACKBONES)}")
    pre.add_argument("--split", default=d.split, help="split name or manifest .json")
    pre.add_argument("--track", default=d.track, choices=TRACKS,
                     help="album: the community's train photos are unlabelled data too")
    pre.add_argument("--images", metavar="DIR",
                     help="learn from the faces in your own folder of unlabelled photos "
                          "(found and cut as `facessl predict` does) instead of the split")
    pre.add_argument("--detector", choices=DETECTORS,
                     help="the face detector that cuts faces from photos for the face space "
                          "(and so for every model enrolled with it; default: mtcnn when "
                          "installed, else haar)")
    pre.add_argument("--epochs", type=int, help=f"passes over the unlabelled images (default "
                                                f"{d.train.epochs}; 0 keeps the backbone's "
                                                "weights and fits only its face space)")
    pre.add_argument("--lr", type=float, help=f"AdamW learning rate (default {d.train.lr}); "
                                              "lower it if the loss turns non-finite")
    pre.add_argument("--batch-size", type=int, help=f"default {d.train.batch_size}")
    pre.add_argument("--size", type=int, help="input side in pixels (default: the backbone's, "
                                              "e.g. 32 for tinyvgg, 96 for efficientnet_lite0)")
    pre.add_argument("--pool-images", type=int, default=d.pool_images,
                     help="use a random subset of this many images")
    pre.add_argument("--option", action="append", metavar="KEY=VALUE",
                     help="a method option, e.g. --option temperature=0.2 (repeatable)")
    pre.add_argument("--seed", type=int, default=d.seed)
    _data_out_quiet(pre, "checkpoint folder (default runs/pretrain-<method>-...)", _pretrain)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    d = EvaluateConfig()
    eva = sub.add_parser("evaluate", help="label efficiency and LFW verification of a backbone")
    eva.add_argument("checkpoint", help="a `facessl pretrain` folder, efficientnet_lite0 "
                                        "(ImageNet weights) or random:<backbone>")
    eva.add_argument("--split", default=d.split)
    eva.add_argument("--shots", type=shots, nargs="+", default=d.shots,
                     help="labelled images per person to test (numbers or 'all'; default 1 2 5 10 "
                          "all, up to what everyone has)")
    eva.add_argument("--seeds", type=int, nargs="+", default=d.seeds)
    eva.add_argument("--track", default=d.track, choices=TRACKS)
    eva.add_argument("--protocols", nargs="+", default=d.protocols,
                     help=f"any of {' '.join(PROTOCOLS)}")
    eva.add_argument("--finetune-epochs", type=int)
    eva.add_argument("--block", type=int, default=d.block,
                     help="EfficientNet-Lite0 only: score the feature map of this MBConv "
                          "block (flattened) instead of the pooled embedding; 4 is what "
                          "`facessl enroll` uses")
    eva.add_argument("--lfw-crops", action="store_true",
                     help="score LFW's own central crops instead of the faces the product "
                          "cuts (found by the checkpoint's detector and aligned)")
    eva.add_argument("--no-verification", action="store_true", help="skip LFW pairs.txt")
    eva.add_argument("--pairs", help="LFW pairs.txt (default: lfw-protocol/ beside the data)")
    _data_out_quiet(eva, "output folder (default runs/evaluate-...)", _evaluate)


def _data_out_quiet(parser: argparse.ArgumentParser, out_help: str, handler) -> None:
    """The options every long-running research command shares, and its handler."""
    parser.add_argument("--data", help=DATA_HELP)
    parser.add_argument("--out", help=out_help)
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--device", help="where training runs: cpu, cuda or cuda:N (default: "
                                         "the GPU where there is one; bf16 on CUDA)")
    parser.set_defaults(func=handler)


def _add_data(sub: argparse._SubParsersAction) -> None:
    d = DataConfig()
    data = sub.add_parser("data", help="prepare data: decode LFW once, make split manifests")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    prep = data_sub.add_parser("prepare", help="decode every image once into the cache")
    prep.add_argument("--data", help=DATA_HELP)
    prep.add_argument("--crop", type=int, default=d.prep.crop, help="central crop side, LFW pixels")
    prep.add_argument("--size", type=int, default=d.prep.size, help="stored side in pixels")
    prep.add_argument("--grayscale", action="store_true")
    prep.set_defaults(func=_data_prepare)
    man = data_sub.add_parser("manifest", help="make a split manifest for a folder of people")
    man.add_argument("folder", help="folder of <Person>/<image> sub-folders, or an LFW archive")
    man.add_argument("--out", required=True, help="manifest .json to write")
    man.add_argument("--name", help="split name (default: the file's stem)")
    man.add_argument("--min-images", type=int, default=d.min_images,
                     help="people with at least this many images form the community")
    man.set_defaults(func=_data_manifest)
