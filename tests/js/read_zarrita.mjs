// Reads one array over HTTP with zarrita and prints its shape, data type and bytes (base64) as JSON.
// Usage: node read_zarrita.mjs URL PATH FORMAT   (FORMAT: 2 or 3)
import * as zarr from "zarrita";

const [url, path, format] = process.argv.slice(2);
const location = zarr.root(new zarr.FetchStore(url)).resolve(path);
const open = format === "2" ? zarr.open.v2 : zarr.open.v3;
const array = await open(location, { kind: "array" });
const chunk = await zarr.get(array);
const bytes = new Uint8Array(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
process.stdout.write(
  JSON.stringify({ shape: chunk.shape, dtype: array.dtype, data: Buffer.from(bytes).toString("base64") }),
);
