"""The ``zarrfs`` command line: mount, unmount, serve, info."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from zarrfs import __version__
from zarrfs.core.codecs import COMPRESSOR_NAMES
from zarrfs.core.describe import printable
from zarrfs.core.formats import NGFF_VERSIONS
from zarrfs.core.options import (
    DEFAULT_NGFF,
    DOWNSAMPLE_METHODS,
    MAX_TIMEOUT_S,
    MIN_CACHE_BYTES,
    MIN_TIMEOUT_S,
    SIZE_SYNTAX,
    human_bytes,
    parse_timeout,
    serve_options,
)
from zarrfs.core.repository.options import (
    DEFAULT_MAX_OPEN,
    DEFAULT_SETTLE_S,
    RepositoryOptions,
    repository_options,
)
from zarrfs.errors import ZarrfsError


def _say(kind: str, message: object) -> None:
    """One line on stderr, ``zarrfs: <kind>: ...``; a file name in it may hold a newline or escapes."""
    click.echo(f"zarrfs: {kind}: {printable(str(message))}", err=True)


class _OptionError(click.ClickException):
    """A bad option value, reported like every other problem (one line, exit 1) rather than with click's
    usage text."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        _say("error", self.message)


class _Checked(click.ParamType[Any, Any]):
    """An option value read by one of zarrfs's own parsers, which raise ZarrfsError with the whole story."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.parse(value)
        except ZarrfsError as error:
            raise _OptionError(str(error)) from None


def _fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print problems as one 'zarrfs: error: ...' line and exit non-zero. A bug (any other exception) is one
    'zarrfs: internal error: ...' line too, followed by its traceback only with the command's --debug or the
    environment variable ZARRFS_TRACEBACK set."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ZarrfsError as error:
            _say("error", error)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as error:  # a bug: still one line, with where to look
            if kwargs.get("debug") or os.environ.get("ZARRFS_TRACEBACK"):
                _say("internal error", f"{type(error).__name__}: {error}")
                raise
            _say("internal error", f"{type(error).__name__}: {error} (rerun with --debug for the traceback)")
            sys.exit(2)

    return wrapper


def _debug_flag(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--debug``, which every command takes: shows the traceback of an internal error, and ``what``."""
    return click.option("--debug", is_flag=True, help=f"Show the traceback of an internal error; {what}.")


def _serve_option_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape the served representation, shared by ``mount`` and ``info``."""
    flags = [
        click.option("--series", type=int,
                     help="Which image series of a multi-series file (TIFF, HDF5) to serve alone (default: "
                          "every series, in the bioformats2raw layout)."),
        click.option("--dataset", metavar="PATH",
                     help="The image inside a container file or group, e.g. /Image in an HDF5 file."),
        click.option("--axes", metavar="AXES",
                     help="Names of the stored dimensions in their stored order, from t, c, z, y, x (e.g. "
                          "zyx), for formats that do not record them."),
        click.option("--sequence-list", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Serve the files FILE names (one a line, relative to its directory, in that "
                          "order) as one image; replaces SOURCE. A quoted glob as SOURCE ('sections/*.tif') "
                          "does the same in natural order (slice_2 before slice_10)."),
        click.option("--sequence-axis", type=click.Choice(["z", "t", "c"]),
                     help="The axis a file sequence is stacked along (default: z); the files must not "
                          "have it."),
        click.option("--sequence-pattern", metavar="REGEX",
                     help="Place the files of a sequence by the number the group named index matches in "
                          r"their names, e.g. 'slice_(?P<index>\d+)'; missing numbers are planes of the "
                          "fill value."),
        click.option("--pixel-size", multiple=True, metavar="AXIS=VALUE[UNIT]",
                     help="Set or override a physical pixel size, e.g. z=20 (micrometer by default), "
                          "x=0.325um, t=2.5s; repeat for several axes. Any format."),
        click.option("--chunks", metavar="N,N,...",
                     help="Chunk shape, right-aligned to the axes: '512,512' sets y and x, "
                          "'1,1,16,256,256' sets t,c,z,y,x. Default: a multiple of the source's tiles "
                          "or strips of about 512x512 (no tile is decoded for two chunks)."),
        click.option("--compressor", type=click.Choice(COMPRESSOR_NAMES), default="none", show_default=True,
                     help="Codec of the served chunks (zlib is served as gzip on Zarr v3). 'none' is "
                          "cheapest to serve and its file sizes are known without work; compressed chunks "
                          "are encoded when first listed or read."),
        click.option("--clevel", type=int,
                     help="Compression level (default: blosc 5 for lz4, 3 for zstd; zstd 1; zlib 1)."),
        click.option("--cache-size", default="512MiB", show_default=True, metavar="SIZE",
                     help=f"Memory for the daemon's caches, from {human_bytes(MIN_CACHE_BYTES)} to this "
                          f"machine's memory: {SIZE_SYNTAX}."),
        click.option("--ngff", type=click.Choice(["all", *NGFF_VERSIONS]), default=DEFAULT_NGFF,
                     show_default=True,
                     help="Layout to serve: 0.4 (Zarr v2, read by every client: Fiji, MoBIE, zarr-python 2 "
                          "and 3, ...), 0.5 (Zarr v3, needed for --shards) or all (both side by side; "
                          "zarr-python 3 then warns that both exist)."),
        click.option("--levels", type=int,
                     help="Total resolution levels (stored + computed). Default: halve until one chunk "
                          "covers a plane."),
        click.option("--downsample", type=click.Choice(DOWNSAMPLE_METHODS), default="mean", show_default=True,
                     help="How computed levels are made: mean for intensities, mode or nearest for labels."),
        click.option("--shards", type=int, metavar="N",
                     help="Zarr v3: put NxN chunks (in y and x) in one shard file, for file systems that "
                          "suffer from many small files."),
        click.option("--passthrough", type=click.Choice(["auto", "off"]), default="auto", show_default=True,
                     help="auto: where chunks are the source's tiles and the compressor matches their codec "
                          "(none, zlib=deflate, zstd), serve the stored bytes unchanged."),
        click.option("--anon", is_flag=True,
                     help="URL sources: read without credentials (public buckets)."),
        click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
                     help="URL sources: an option of the protocol's fsspec file system (VALUE read as JSON "
                          "where it parses), e.g. endpoint_url=http://127.0.0.1:9000 or "
                          "requester_pays=true; repeat for several. Values are never shown or logged."),
        click.option("--disk-cache", metavar="DIR",
                     help="URL sources: keep fetched blocks in DIR (made if missing) across mounts and "
                          "processes, keyed by URL and the object's ETag/version (a changed object never "
                          "gets old blocks)."),
        click.option("--disk-cache-size", metavar="SIZE",
                     help=f"The most --disk-cache keeps (least recently used blocks go first): {SIZE_SYNTAX} "
                          "(default: 10GiB)."),
    ]  # fmt: skip
    for flag in reversed(flags):
        command = flag(command)
    return command


def _repository_option_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a repository (SOURCE a directory of images), shared by ``mount``, ``serve`` and
    ``info``; the command receives them as one RepositoryOptions, ``repository``."""
    flags = [
        click.option("--max-open", type=int, default=DEFAULT_MAX_OPEN, show_default=True, metavar="N",
                     help="Repository: images open at once; the least recently used is closed (and "
                          "reopened when used again)."),
        click.option("--settle", type=float, default=DEFAULT_SETTLE_S, show_default=True, metavar="SECONDS",
                     help="Repository: show a file only once it has not changed for this long (a file "
                          "still being written is not shown)."),
        click.option("--follow-symlinks", is_flag=True,
                     help="Repository: follow symbolic links that lead out of SOURCE (not followed by "
                          "default)."),
    ]  # fmt: skip

    @wraps(command)
    def with_options(*args: Any, max_open: int, settle: float, follow_symlinks: bool, **kwargs: Any) -> Any:
        return command(*args, repository=repository_options(max_open, settle, follow_symlinks), **kwargs)

    wrapped: Callable[..., Any] = with_options
    for flag in reversed(flags):
        wrapped = flag(wrapped)
    return wrapped


def _timeout_flag(answer: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--timeout``, shared by the commands that serve; ``answer`` is what a request over it gets."""
    return click.option(
        "--timeout",
        "request_timeout",
        type=_Checked("seconds", parse_timeout),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help=f"Answer a request that takes longer (e.g. a stuck source read) with {answer}: "
        f"{MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} (one day); there is no unlimited setting, so that no client "
        "ever hangs.",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zarrfs")
def main() -> None:
    """Serve an image (TIFF/OME-TIFF/BigTIFF, HDF5, NIfTI, Zarr/N5, a file sequence) as a live, read-only
    OME-Zarr tree (NGFF 0.4 or 0.5), through FUSE or HTTP.

    Nothing is converted or copied: metadata and chunk files are made on demand from the source.

    \b
      zarrfs info image.tif                   # what a mount would show
      zarrfs mount image.tif image.ome.zarr   # then open it with zarr, napari, dask, ...
      zarrfs unmount image.ome.zarr
      zarrfs serve image.tif                  # over HTTP, for web viewers (Neuroglancer, vizarr)
    """


def _source_name(source: str) -> str:
    """A path made absolute (the daemon runs elsewhere); a URL as given."""
    from zarrfs.sources.remote.urls import is_url

    return source if is_url(source) else os.path.abspath(source)


def _source_and_mountpoint(
    first: str | None, second: str | None, sequence_list: str | None
) -> tuple[str, str]:
    """``mount SOURCE MOUNTPOINT``, or ``mount --sequence-list FILE MOUNTPOINT`` (the list is the source)."""
    if sequence_list is not None:
        if second is not None:
            raise ZarrfsError("give either SOURCE or --sequence-list FILE, not both")
        first, second = sequence_list, first
    if first is None or second is None:
        raise ZarrfsError("missing argument: mount SOURCE MOUNTPOINT, or --sequence-list FILE MOUNTPOINT")
    return first, second


@main.command()
@click.argument("source", type=click.Path(readable=False), required=False)
@click.argument("mountpoint", type=click.Path(), required=False)
@_serve_option_flags
@click.option(
    "-f", "--foreground", is_flag=True, help="Stay attached (for job scripts); Ctrl-C or SIGTERM unmounts."
)
@click.option(
    "-o",
    "fuse_options",
    multiple=True,
    metavar="OPT[,OPT...]",
    help="FUSE mount options passed on, e.g. -o allow_other (needs user_allow_other in "
    "/etc/fuse.conf for non-root users).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    help="Daemon log (default: ~/.local/state/zarrfs/<mountpoint>.log, or $TMPDIR/zarrfs-<uid>/ without a "
    "home directory; with -f: stderr). Never the source, never inside the mount point.",
)
@_timeout_flag("EIO")
@_debug_flag("log every FUSE request (very verbose)")
@_fail_cleanly
@_repository_option_flags
def mount(source: str | None, mountpoint: str | None, foreground: bool, fuse_options: tuple[str, ...],
          log_file: str | None, request_timeout: float, debug: bool, repository: RepositoryOptions,
          **serve: Any) -> None:  # fmt: skip
    """Mount SOURCE at MOUNTPOINT as an OME-Zarr hierarchy (read-only).

    SOURCE is an image file, a quoted glob ('sections/slice_*.tif') of files served as one image, a URL
    (https://..., s3://bucket/key), or a directory of images (a repository: its tree mirrored live, each image
    as <name>.ome.zarr).
    Returns once the mount is live (exit 0) or failed (non-zero, with the reason).
    """
    from zarrfs.frontends.mount import (
        MountSpec,
        mount_background,
        parse_fuse_options,
        reader_choice_hint,
        run_foreground,
    )

    source, mountpoint = _source_and_mountpoint(source, mountpoint, serve["sequence_list"])
    spec = MountSpec(
        source=_source_name(source),
        mountpoint=os.path.abspath(mountpoint),  # resolved by the mount, within a time limit
        options=serve_options(**serve),
        fuse_options=parse_fuse_options(fuse_options),
        log_file=log_file,
        debug=debug,
        request_timeout=request_timeout,
        repository=repository,
    )
    # For a person at a terminal only: scripts read stderr for errors, and a normal mount prints nothing.
    hint = reader_choice_hint(spec.mountpoint) if sys.stderr.isatty() else None
    if foreground:
        if hint:
            _say("hint", hint)
        run_foreground(spec)
    else:
        note = mount_background(spec).note
        if note:
            _say("warning", note)
        if hint:
            _say("hint", hint)


@main.command()
@click.argument("source", type=click.Path(readable=False), required=False)
@_serve_option_flags
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on; 0.0.0.0 serves every network this machine is on (see --token).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    metavar="N",
    help="Port to listen on (0: any free port; the printed URL says which).",
)
@click.option(
    "--cors-origin",
    default="*",
    show_default=True,
    metavar="ORIGIN",
    help="The web origin whose pages may read the data (Access-Control-Allow-Origin).",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="Refuse requests (401) that do not carry this token (?token=, an Authorization: token "
    "header, or the cookie the index page sets); 'auto' makes a random one. Never logged.",
)
@_timeout_flag("504 Gateway Timeout")
@_fail_cleanly
@_repository_option_flags
def serve(source: str | None, host: str, port: int, cors_origin: str, token: str | None,
          request_timeout: float, repository: RepositoryOptions, **serve: Any) -> None:  # fmt: skip
    """Serve SOURCE over HTTP as OME-Zarr (and Neuroglancer precomputed), for web viewers and remote clients.

    Prints the URL once connections are accepted; runs until Ctrl-C or SIGTERM.
    """
    from zarrfs.frontends.http.server import HttpSpec, make_token, run

    if (source is None) == (serve["sequence_list"] is None):
        raise ZarrfsError("give either SOURCE or --sequence-list FILE")
    run(
        HttpSpec(
            source=_source_name(source or serve["sequence_list"]),
            options=serve_options(**serve),
            host=host,
            port=port,
            cors_origin=cors_origin,
            token=make_token() if token == "auto" else token,
            request_timeout=request_timeout,
            repository=repository,
        )
    )


@main.command()
@click.argument("mountpoint", type=click.Path())
@click.option("-z", "--lazy", is_flag=True, help="Detach now even if busy; cleaned up once no longer used.")
@_debug_flag("nothing else")
@_fail_cleanly
def unmount(mountpoint: str, lazy: bool, debug: bool) -> None:
    """Unmount the zarrfs mount at MOUNTPOINT (also a stale one left by a killed daemon)."""
    from zarrfs.frontends.mounts import unmount as unmount_path

    warning = unmount_path(mountpoint, lazy=lazy)
    if warning:
        _say("warning", warning)


@main.command()
@click.argument("source", type=click.Path(readable=False), required=False)
@_serve_option_flags
@click.option("--check", is_flag=True,
              help="Open every file of the source now (a file sequence opens each file only when first read) "
                   "and list those that cannot be served; exit 1 if any (for a repository: if any image "
                   "cannot be served).")  # fmt: skip
@_debug_flag("log what the reader ignored or assumed on stderr")
@_fail_cleanly
@_repository_option_flags
def info(source: str | None, check: bool, debug: bool, repository: RepositoryOptions, **serve: Any) -> None:
    """Print the hierarchy a mount of SOURCE would expose, without mounting."""
    import logging

    from zarrfs.core.describe import describe
    from zarrfs.core.repository import Repository
    from zarrfs.core.repository.report import report
    from zarrfs.core.served import open_served, served_images

    if debug:
        logging.basicConfig(level=logging.DEBUG, format="zarrfs: debug: %(name)s: %(message)s")
    if (source is None) == (serve["sequence_list"] is None):
        raise ZarrfsError("give either SOURCE or --sequence-list FILE")
    served = open_served(source or serve["sequence_list"], serve_options(**serve), repository)
    if isinstance(served, Repository):
        if not debug:  # the report says which images cannot be served: not the log on stderr too
            logging.getLogger("zarrfs").addHandler(logging.NullHandler())
        try:
            summary = report(served.tree)
        finally:
            served.close()
        for line in summary.lines:
            click.echo(line)
        if check and summary.failed:
            sys.exit(1)
        return
    dataset = served
    try:
        click.echo(describe(dataset))
        images = served_images(dataset) if check else []
        problems = [line for image in images for line in image.source.problems()]
        if check:
            click.echo(f"check:     {len(problems)} of {len(dataset.files())} files cannot be served")
            for problem in problems:
                click.echo("  " + printable(problem))
    finally:
        dataset.close()
    if problems:
        sys.exit(1)
