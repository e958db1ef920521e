"""`facessl group / name / merge / split / remove-face / find`: from an unlabelled album to
people, and back to every photo of one.

Parsing only; each handler calls one function of `album.group` or `album.naming` and
prints what changed, with the next command to run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from facessl.config import GroupConfig


def _group(args: argparse.Namespace) -> int:
    from facessl.album.group import group_album

    started = time.perf_counter()
    groups, summary = group_album(args.album, args.out, backbone=args.backbone,
                                  threshold=args.threshold, quiet=args.quiet)
    for photo, why in summary.skipped.items():
        print(f"facessl: note: photo skipped: {why}", file=sys.stderr)
    named = sum(g.name is not None for g in groups.groups.values())
    share = summary.grouped / max(summary.faces - len(groups.removed), 1)
    print(f"{summary.photos} photos ({summary.new_photos} new, {len(summary.skipped)} skipped"
          + (f", {summary.gone} gone" if summary.gone else "") + f"): {summary.faces} faces "
          f"({summary.new_faces} new), {len(groups.groups)} groups ({named} named), "
          f"{summary.grouped} faces grouped ({share:.0%}), {len(groups.ungrouped)} ungrouped")
    if summary.suggestions:
        print("name these groups next (largest first; the face shown is the most typical):")
        for group, faces, face in summary.suggestions:
            print(f"  group {group}: {faces} faces, e.g. f{face}:  "
                  f"facessl name {args.out} {group} NAME")
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in summary.seconds.items())
    print(f"wrote {args.out}/groups.json, overview.png and sheets/ in "
          f"{time.perf_counter() - started:.1f} s ({steps})")
    return 0


def _name(args: argparse.Namespace) -> int:
    from facessl.album.naming import name_group

    group = name_group(args.groups, args.group, args.name)
    print(f"group {group.id} ({len(group.faces)} faces) is {group.name}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from facessl.album.naming import merge_groups

    group = merge_groups(args.groups, args.group, args.others)
    print(f"merged into group {group.id}: {len(group.faces)} faces"
          + (f" of {group.name}" if group.name else ""))
    return 0


def _split(args: argparse.Namespace) -> int:
    from facessl.album.naming import split_faces

    group = split_faces(args.groups, args.faces)
    print(f"moved {_faces(len(group.faces))} into the new group {group.id}; name it: "
          f"facessl name {args.groups} {group.id} NAME")
    return 0


def _remove_face(args: argparse.Namespace) -> int:
    from facessl.album.naming import remove_faces

    faces = remove_faces(args.groups, args.faces)
    print(f"removed {_faces(len(faces))}: they stay out of groups, enrolment and the album")
    return 0


def _find(args: argparse.Namespace) -> int:
    from facessl.album.find import find_person

    faces = find_person(args.groups, args.name, args.model)
    if args.json:
        json.dump({"name": args.name, "photos": len({f.photo for f in faces}),
                   "faces": [vars(f) for f in faces]}, sys.stdout, indent=1)
        print()
        return 0
    by_model = sum(f.group is None for f in faces)
    print(f"{args.name}: {len({f.photo for f in faces})} photos ({len(faces) - by_model} faces "
          f"in named groups" + (f", {by_model} named by {args.model}" if args.model else "")
          + ")", file=sys.stderr)
    for face in faces:
        how = f"group {face.group}" if face.group is not None else f"model {face.score:.2f}"
        print(f"{face.photo}\tf{face.face}\t{how}")
    return 0


def _faces(count: int) -> str:
    return f"{count} face" if count == 1 else f"{count} faces"


def add_album_commands(sub: argparse._SubParsersAction) -> None:
    """Register the album subcommands on the `facessl` parser."""
    group = sub.add_parser(
        "group", help="find the people in an album of unlabelled photos",
        description="Find every face in ALBUM_DIR, group the faces that look like the same "
                    "person and write GROUPS_DIR: groups.json, overview.png and one contact "
                    "sheet per group (sheets/). Run it again when the album grows: groups keep "
                    "their ids, names and your edits.")
    group.add_argument("album", metavar="ALBUM_DIR", help="folder of photos (sub-folders too)")
    group.add_argument("--out", required=True, metavar="GROUPS_DIR")
    group.add_argument("--backbone", metavar="NAME_OR_CHECKPOINT",
                       help="the face space (as for enroll; default: the one GROUPS_DIR was "
                            "grouped in, else the product's default)")
    group.add_argument("--threshold", type=float, metavar="COSINE",
                       help="mean similarity two groups need to join: higher makes smaller, "
                            f"purer groups (default {GroupConfig().threshold}, or "
                            "GROUPS_DIR's)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")
    group.set_defaults(func=_group)

    name = sub.add_parser("name", help="name a group of faces (the person it is)")
    name.add_argument("groups", metavar="GROUPS_DIR")
    name.add_argument("group", metavar="GROUP", help="group id (overview.png shows them)")
    name.add_argument("name", metavar="NAME")
    name.set_defaults(func=_name)

    merge = sub.add_parser("merge", help="merge groups that are the same person")
    merge.add_argument("groups", metavar="GROUPS_DIR")
    merge.add_argument("group", metavar="GROUP", help="the group that stays")
    merge.add_argument("others", metavar="OTHER", nargs="+", help="groups merged into it")
    merge.set_defaults(func=_merge)

    split = sub.add_parser("split", help="move faces (from a wrong group) into a new group")
    split.add_argument("groups", metavar="GROUPS_DIR")
    split.add_argument("faces", metavar="FACE", nargs="+", help="face ids (f12), as on sheets")
    split.set_defaults(func=_split)

    remove = sub.add_parser("remove-face", help="leave faces out (a poster, not a face)")
    remove.add_argument("groups", metavar="GROUPS_DIR")
    remove.add_argument("faces", metavar="FACE", nargs="+", help="face ids (f12), as on sheets")
    remove.set_defaults(func=_remove_face)

    find = sub.add_parser("find", help="every photo of a person in a grouped album",
                          description="List the photos NAME appears in: the faces of the "
                                      "groups named NAME and, with --model, every face outside "
                                      "named groups that the model names NAME. One line per "
                                      "face: photo, face id, how it was found.")
    find.add_argument("groups", metavar="GROUPS_DIR")
    find.add_argument("name", metavar="NAME")
    find.add_argument("--model", metavar="MODEL",
                      help="the bundle `facessl enroll --groups GROUPS_DIR` wrote: also the "
                           "faces it names NAME (above its unknown threshold)")
    find.add_argument("--json", action="store_true", help="one JSON document instead")
    find.set_defaults(func=_find)
