// A small image that builds on any machine: no network, five layers from
// local files, inline text and a vendored archive. The `hello` binary is a
// static program compiled by `npm run example` (or the tests).
import { defineImage } from "layerfold";

export default defineImage({
  name: "layerfold-examples/hello",
  tag: "1.0",
  layers: [
    {
      name: "base",
      inline: [
        { path: "/etc/passwd", text: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" },
        { path: "/etc/group", text: "root:x:0:\nnogroup:x:65534:\n" },
        { path: "/etc/os-release", text: 'NAME="layerfold hello"\nID=layerfold-hello\n' },
      ],
    },
    { name: "bin", files: [{ src: "./build/hello", dest: "/usr/bin/hello", mode: 0o755, name: "hello" }] },
    { name: "vendor-docs", archives: [{ path: "./vendor/docs.tar.gz", sha256: "253b1bfa78273bd549810b018771fe17921803b14e88428f369ca8414354a997", dest: "/usr/share/doc/hello" }] },
    { name: "app", files: [{ src: "./app", dest: "/opt/hello", perms: [{ regex: "^opt/hello/bin/", mode: 0o755 }] }] },
    {
      name: "entrypoint",
      inline: [{ path: "/usr/local/bin/entrypoint", mode: 0o755, text: "#!/usr/bin/hello\n" }],
    },
  ],
  config: {
    entrypoint: ["/usr/bin/hello"],
    env: { GREETING: "hello" },
    workdir: "/opt/hello",
    labels: { "org.opencontainers.image.title": "layerfold hello example" },
    exposedPorts: [8080],
    volumes: ["/data"],
  },
});
