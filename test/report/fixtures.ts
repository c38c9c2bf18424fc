// Small hand-made image models for the report tests: the shapes the build
// record and lock really have (deb with architecture meta, py wheels, a git
// source, a url archive), without building anything.

import type { ImageModel, ModelPackage } from "../../src/report/model.ts";
import { duplication } from "../../src/report/model.ts";

const sha = (c: string) => c.repeat(64).slice(0, 64);

export function sampleModel(): ImageModel {
  const packages: ModelPackage[] = [
    { id: "deb:libc6", kind: "deb", name: "libc6", version: "2.36-9+deb12u7", layer: "base", via: "deb:base-files", bytes: 12_000_000, files: 300, deps: [], meta: { architecture: "amd64" }, artifact: { file: "libc6_2.36-9+deb12u7_amd64.deb", sha256: sha("a"), url: "http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.36-9+deb12u7_amd64.deb" } },
    { id: "deb:base-files", kind: "deb", name: "base-files", version: "12.4+deb12u5", layer: "base", bytes: 400_000, files: 40, deps: ["deb:libc6"], meta: { architecture: "amd64" }, artifact: { file: "base-files_12.4+deb12u5_amd64.deb", sha256: sha("b") } },
    { id: "deb:tzdata", kind: "deb", name: "tzdata", version: "1:2024a-0+deb12u1", layer: "base", bytes: 3_000_000, files: 600, deps: [], meta: { architecture: "all" }, artifact: { file: "tzdata_2024a-0+deb12u1_all.deb", sha256: sha("c") } },
    { id: "py:torch", kind: "py", name: "torch", version: "2.14.1", layer: "torch", bytes: 1_500_000_000, files: 9000, deps: ["py:numpy", "py:typing-extensions"], artifact: { file: "torch-2.14.1-cp311-cp311-linux_x86_64.whl", sha256: sha("d") } },
    { id: "py:typing-extensions", kind: "py", name: "typing_extensions", version: "4.12.2", layer: "torch", via: "py:torch", bytes: 130_000, files: 3, deps: [], artifact: { file: "typing_extensions-4.12.2-py3-none-any.whl", sha256: sha("e") } },
    { id: "py:numpy", kind: "py", name: "numpy", version: "2.1.0", layer: "torch", via: "py:torch", bytes: 60_000_000, files: 900, deps: [], artifact: { file: "numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl", sha256: sha("f") } },
    { id: "git:comfyui", kind: "git", name: "ComfyUI", version: "0123456789abcdef0123456789abcdef01234567", layer: "app", bytes: 8_000_000, files: 500, deps: ["py:torch"], meta: { url: "https://github.com/comfyanonymous/ComfyUI", commit: "0123456789abcdef0123456789abcdef01234567" } },
    { id: "archive:models", kind: "archive", name: "models", version: "1.0", layer: "app", bytes: 2_000_000, files: 2, deps: [], artifact: { file: "models-1.0.tar.gz", sha256: sha("9"), url: "https://example.org/models-1.0.tar.gz" } },
    { id: "file:/entrypoint.sh", kind: "file", name: "/entrypoint.sh", version: "abc", layer: "app", bytes: 200, files: 1, deps: [] },
  ].sort((a, b) => (a.id < b.id ? -1 : 1)) as ModelPackage[];
  const layers = [
    { name: "base", digest: `sha256:${sha("1")}`, diffId: `sha256:${sha("2")}`, size: 5_000_000, uncompressedSize: 15_400_000, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", reused: true, packages: ["deb:base-files", "deb:libc6", "deb:tzdata"] },
    { name: "torch", digest: `sha256:${sha("3")}`, diffId: `sha256:${sha("4")}`, size: 900_000_000, uncompressedSize: 1_560_130_000, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", reused: false, packages: ["py:numpy", "py:torch", "py:typing-extensions"] },
    { name: "app", digest: `sha256:${sha("5")}`, diffId: `sha256:${sha("6")}`, size: 4_000_000, uncompressedSize: 10_000_200, mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", reused: false, packages: ["archive:models", "file:/entrypoint.sh", "git:comfyui"] },
  ];
  return {
    image: "example/megapak:1.0",
    name: "example/megapak",
    tag: "1.0",
    manifestDigest: `sha256:${sha("7")}`,
    layers,
    packages,
    droppedLayers: [],
    totals: { size: layers.reduce((n, l) => n + l.size, 0), uncompressedSize: layers.reduce((n, l) => n + l.uncompressedSize, 0), packages: packages.length },
    duplication: { compressed: duplication(layers.map((l) => l.size)), uncompressed: duplication(layers.map((l) => l.uncompressedSize)) },
    haveLock: true,
  };
}
