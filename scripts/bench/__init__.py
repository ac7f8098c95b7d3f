"""Benchmark zarrfs against the tools users would pick instead, side by side in one run (issues 4, 12-15).

    python -m scripts.bench --output BENCHMARKS.md      # full run (what `make bench` does)
    python -m scripts.bench --quick                     # smoke run on small images
    python -m scripts.bench --workdir DIR --only a,e,w  # images and mounts under DIR; a subset of images

Run from the repository root. Generated images (kept in --workdir, default ./bench-data, and reused when
present; the directory must stay out of version control):
  a  plane.tif       2-D uint16, deflate tiles 256x256, smooth structures + noise (microscopy-like), 2.5 GiB
  b  stack.ome.tif   3-D OME-TIFF z-stack, uint16, uncompressed, 1 GiB
  c  slide.ome.tif   RGB uint8 slide-like pyramid, JPEG tiles, reduced levels in SubIFDs, 1.7 GiB level 0
  d  sparse.tif      BigTIFF of 50 GiB logical size: only a central block of tiles is written, the rest of the
                     tiles have offset 0 / bytecount 0, so the file is ~80 MB
  e  volume.h5       HDF5 (h5py), 3-D uint16 chunks 1x512x512 deflate, 512 MiB
  f  sparse.h5       HDF5 of 20 GiB logical size, only four central planes' chunks written (first chunk only)
  g  volume.nii      NIfTI-1 (nibabel), the same volume uncompressed
  h  volume.nii.gz   NIfTI-1 (nibabel), gzip
  i  volume.zarr     Zarr v3 array (tensorstore), zstd
  j  volume.n5       N5 dataset (tensorstore), gzip
  k  sequence/       one deflate-tiled 2-D TIFF per plane, served through the glob sequence/s_*.tif
  l  many/           2,000 small TIFF files as one sequence (mount and first chunk only)
  w  served.tif      2-D uint16 plane, 8192x8192, for the HTTP rows
  r  repository/     20,000 small images (64x64 TIFF, one in 50 a NIfTI .nii.gz) in 200 directories, 1,000 of
                     them in the first; a text file per directory that no reader opens (6 s to write)
  u  cog.tif         sparse COG-like BigTIFF of 81 GB logical size, deflate tiles, reduced levels in SubIFDs
                     down to one tile, only a central block of tiles per level stored (~17 MB), read over HTTP
  v  remote-stack.ome.tif  OME-TIFF z-stack, uint16, deflate tiles 256x256, 1 GiB, read over HTTP

Workloads (each read through the mount uses a fresh mount: zarrfs cache and kernel page cache empty, the
source file itself in the page cache):
  1  full read of level 0: tensorstore / zarr-python / dask through the mount; tifffile.imread; zarr-python
     over tifffile's aszarr store; zarr-python over zarrfs.open_store (in-process); tensorstore and
     zarr-python over an OME-Zarr copy converted beforehand (ome-zarr-py, conversion timed)
  2  random chunk files: open + read + close latency, p50/p99, cold then warm
  3  time to first chunk: mount + zarr open + one chunk, vs the whole conversion
  4  every level once, coarse to fine (viewer-style), vs level 0 alone
  5  daemon peak RSS (VmHWM) while reading an image >= 4x the cache size
  6  second pass over the same data (kernel page cache) vs first pass
  7  the other formats (e-l): full read through the mount (tensorstore) vs the format's own reader (h5py
     dset[...], nibabel dataobj[...], tensorstore on the store, tifffile.imread of the files), first chunk,
     daemon peak RSS reading 4x the cache
  8  HTTP (w): a cold full read with tensorstore over HTTP from `zarrfs serve`, from nginx over a copy of the
     mount's tree, and through a FUSE mount; wrk (16 connections) on one warm 512 KiB chunk and on one
     metadata document of each server. The servers listen on 127.0.0.1 and are stopped after their rows.
  9  a repository (r), one `zarrfs mount TREE MNT`: mount time, a cold `ls -l` of the 1,000-entry
     directory, the first read of single image nodes (.zattrs + .zarray + chunk), `find MNT -name .zattrs`
     over the whole tree (opens every image; time and images/s), the daemon's VmRSS after that, and how soon
     a TIFF written into the tree while mounted is listed and read
  10 remote sources (u, v) from nginx, directly (0 ms) and through scripts/bench/proxy.py adding 20 ms per
     request round trip; requests counted in nginx's access log: time to first chunk of the COG through a
     fresh mount of its URL and the requests to open it; a full read of the OME-TIFF through the mount
     (tensorstore) vs tifffile.imread over fsspec.open(url), then through a fresh mount from the same
     --disk-cache. Rows whose feature this zarrfs lacks (a directory or URL as SOURCE, --disk-cache) are
     reported as not measured, with zarrfs's reason.

Prints PASS/FAIL per target (scripts/bench/targets.py: GOALS) and writes the report (--output). Missed
targets are re-run under py-spy (when installed) and the report lists where the time went. Every mount is
unmounted (also on Ctrl-C).

Modules: images, synth and formats (the generated images), mounts (on tests/mounting.py), servers
(zarrfs serve, nginx, wrk), proxy (the delaying proxy), host (page cache, memory, load), readers and
chunkfiles (the tools compared, the mount's files), workloads, repository and remote (the rows of issues 14
and 15), targets and misses (goals, reasons for misses, profiling), report, cli.
"""

# What a run costs, stated once: --help prints it, and README.md and the Makefile quote it word for word
# (tests/test_bench.py checks that they do).
COST = (
    "full run ~30-38 min (plus ~7 min to generate the images the first time) and ~13 GB free disk in "
    "--workdir; --quick ~10-16 min and ~0.7 GB (longer on a busy machine: each timed read first waits up to "
    "20 s for quiet)"
)
