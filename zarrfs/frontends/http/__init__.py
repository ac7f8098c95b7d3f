"""The HTTP front end (``zarrfs serve``): the tree's paths, plus Neuroglancer precomputed under
``/precomputed/``, for web viewers and clients on other machines.

semantics.py holds the protocol rules (request targets, ranges, validators), files.py what is served,
routes.py turns one request into one reply through the request policy, index.py the page at ``/`` and
server.py binds the socket (aiohttp) and runs until a signal."""
