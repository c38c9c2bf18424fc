import { test } from "node:test";
import assert from "node:assert/strict";
import { parseReference, formatReference, isLoopback, apiHost } from "../../src/registry/reference.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { ghcrReference } from "../../src/cli/push.ts";

const D = "sha256:" + "a".repeat(64);

test("parseReference: registries, Docker Hub defaults, tags and digests", () => {
  assert.deepEqual(parseReference("ubuntu"), { registry: "docker.io", repository: "library/ubuntu", tag: undefined, digest: undefined });
  assert.deepEqual(parseReference("user/app:1.0"), { registry: "docker.io", repository: "user/app", tag: "1.0", digest: undefined });
  assert.deepEqual(parseReference(`ghcr.io/owner/name:tag@${D}`), { registry: "ghcr.io", repository: "owner/name", tag: "tag", digest: D });
  assert.deepEqual(parseReference("127.0.0.1:5000/a/b/c"), { registry: "127.0.0.1:5000", repository: "a/b/c", tag: undefined, digest: undefined });
  assert.deepEqual(parseReference(`localhost/x@${D}`), { registry: "localhost", repository: "x", tag: undefined, digest: D });
  assert.equal(formatReference(parseReference(`ghcr.io/o/n:t@${D}`)), `ghcr.io/o/n:t@${D}`);
  assert.throws(() => parseReference("ghcr.io/Owner/Name"), /lowercase/);
  assert.throws(() => parseReference("ghcr.io/o/n@sha256:abc"), /64 lowercase hex/);
  assert.throws(() => parseReference("ghcr.io/o/n:bad tag"), /not a valid tag/);
});

test("plain HTTP only for loopback or --insecure; Docker Hub's API host", () => {
  assert.ok(isLoopback("127.0.0.1:5000") && isLoopback("localhost:1") && isLoopback("[::1]:5000"));
  assert.ok(!isLoopback("registry.example:5000") && !isLoopback("10.0.0.1"));
  assert.equal(new RegistryClient({ registry: "registry.example" }).baseUrl, "https://registry.example");
  assert.equal(new RegistryClient({ registry: "127.0.0.1:5000" }).baseUrl, "http://127.0.0.1:5000");
  assert.equal(new RegistryClient({ registry: "registry.lan:5000", insecure: true }).baseUrl, "http://registry.lan:5000");
  assert.equal(apiHost("docker.io"), "registry-1.docker.io");
});

test("--ghcr names the image ghcr.io/<owner>/<name>:<tag>", () => {
  assert.equal(ghcrReference("comfyui-megapak", "cu130", { GITHUB_REPOSITORY_OWNER: "SomeOrg" }), "ghcr.io/someorg/comfyui-megapak:cu130");
  assert.equal(ghcrReference("layerfold-examples/hello", "1.0", { GITHUB_REPOSITORY_OWNER: "me" }), "ghcr.io/me/hello:1.0");
  assert.throws(() => ghcrReference("x", "y", {}), /GITHUB_REPOSITORY_OWNER/);
});
