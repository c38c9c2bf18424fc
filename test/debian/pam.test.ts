import { test } from "node:test";
import assert from "node:assert/strict";
import { enabledProfiles, pamFromTemplate, parsePamProfile } from "../../src/sources/debian/pam.ts";

// Fixtures from bookworm's libpam-runtime, libpam-modules and libpam-cap; the
// expected text is what the real pam-auth-update --package wrote from them.
const unix = `Name: Unix authentication
Default: yes
Priority: 256
Auth-Type: Primary
Auth:
\t[success=end default=ignore]\tpam_unix.so nullok try_first_pass
Auth-Initial:
\t[success=end default=ignore]\tpam_unix.so nullok
Session-Type: Additional
Session:
\trequired\tpam_unix.so
Session-Initial:
\trequired\tpam_unix.so
`;
const capability = `Name: Inheritable Capabilities Management
Default: yes
Priority: 0
Auth-Type: Additional
Auth-Final:
\toptional\t\t\tpam_cap.so
`;
const mkhomedir = `Name: Create home directory on login
Default: no
Priority: 0
Session-Type: Additional
Session-Interactive-Only: yes
Session:
\toptional\t\t\tpam_mkhomedir.so
`;
const template = `# head
# here are the per-package modules (the "Primary" block)
$auth_primary
# here's the fallback if no module succeeds
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
# and here are more per-package modules (the "Additional" block)
$auth_additional
# end of pam-auth-update config
`;

test("pam-auth-update: default profiles, priority order, Initial lines, jump counts", () => {
  const profiles = [parsePamProfile("capability", capability), parsePamProfile("mkhomedir", mkhomedir), parsePamProfile("unix", unix)];
  const enabled = enabledProfiles(profiles);
  assert.deepEqual(enabled.map((p) => p.name), ["unix", "capability"]);
  assert.equal(
    pamFromTemplate(template, "auth", enabled),
    `# head
# here are the per-package modules (the "Primary" block)
auth\t[success=1 default=ignore]\tpam_unix.so nullok
# here's the fallback if no module succeeds
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
# and here are more per-package modules (the "Additional" block)
auth\toptional\t\t\tpam_cap.so 
# end of pam-auth-update config
`,
  );
  // No Primary module for a type: a pam_permit placeholder keeps the stack intact.
  const sess = pamFromTemplate(template.replace(/^auth\t/gm, "session\t"), "session-noninteractive", enabled)!;
  assert.match(sess, /^session\t\[default=1\]\t\t\tpam_permit.so$/m);
  assert.match(sess, /^session\trequired\tpam_unix.so $/m);
  assert.equal(pamFromTemplate("no markers\n", "auth", enabled), undefined);
});
