"""Test support shipped with zarrfs: the contract tests every source reader must pass.

A reader's test module subclasses ``SourceConformance`` and provides a ``case`` fixture that returns
``SourceCase`` objects (how to open one image, and what its pixels are according to the format's own
reader), the way every zarr-python store subclasses ``StoreTests``::

    class TestMyFormat(SourceConformance):
        @pytest.fixture(params=["small", "tiled"])
        def case(self, request, tmp_path) -> SourceCase:
            path = write_example(tmp_path, request.param)
            return SourceCase(lambda: MySource(path), references=[my_reference_reader(path)], files={path})

Needs pytest (a test dependency of zarrfs, not a run-time one).
"""

from zarrfs.testing.sources import SourceCase, SourceConformance

__all__ = ["SourceCase", "SourceConformance"]
