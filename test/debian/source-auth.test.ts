// A Debian source URI with user:password: the credentials are used for that
// origin only and never stay in the URI (which reaches the lock and messages).
import { test } from "node:test";
import assert from "node:assert/strict";
import { normalizeSources } from "../../src/sources/debian/repo.ts";
import { authorizationFor, forgetHttpCredentials } from "../../src/fetch/http-auth.ts";
import { redact } from "../../src/util/redact.ts";

test("credentials in a debian source URI are taken out and sent to that origin only", () => {
  forgetHttpCredentials();
  process.env.NETRC = "/nonexistent/netrc"; // this machine's ~/.netrc must not decide the result
  const [one, two] = normalizeSources(["deb https://apt-user:apt-Pa55word@apt.example:8443/debian/ bookworm main", { uri: "http://mirror.example/debian", suites: ["bookworm"], components: ["main"] }], false);
  assert.equal(one!.uri, "https://apt.example:8443/debian");
  assert.equal(authorizationFor(`${one!.uri}/dists/bookworm/InRelease`)?.header, `Basic ${Buffer.from("apt-user:apt-Pa55word").toString("base64")}`);
  assert.equal(authorizationFor(`${two!.uri}/dists/bookworm/InRelease`), undefined, "another origin gets nothing");
  assert.equal(authorizationFor("http://apt.example:8443/debian/x"), undefined, "nor the same host over http");
  assert.equal(redact("fetching https://apt.example:8443/debian with apt-Pa55word"), "fetching https://apt.example:8443/debian with ***");
});
