// `layerfold diff A B`: layers and packages added, removed or changed, and the bytes a push of B costs.

import { Command } from "commander";
import { diffImages, loadSide, type LayerDiff } from "../report/diff.ts";
import { formatBytes } from "../util/log.ts";
import { platformFlag, printJson, storeFrom, type CommonFlags } from "./common.ts";
import { credentialOptions, withRegistryFlags, type RegistryFlags } from "./push.ts";

interface DiffFlags extends CommonFlags, RegistryFlags {
  platform?: string;
}

const mark: Record<LayerDiff["status"], string> = { added: "+", removed: "-", changed: "~", unchanged: " " };

export function diffCommand(): Command {
  return withRegistryFlags(new Command("diff"))
    .description("compare two builds or images: layers and packages added, removed or upgraded, and the bytes to push")
    .argument("<a>", "the old image: OCI layout dir (or oci:DIR[:TAG]), a build in the store (NAME:TAG or manifest digest), or a registry ref")
    .argument("<b>", "the new image, same forms")
    .option("--store <dir>", "store directory (default $LAYERFOLD_STORE or $XDG_CACHE_HOME/layerfold)")
    .option("--platform <os/arch>", "platform to pick from a multi-platform image", platformFlag, "linux/amd64")
    .option("--json", "machine-readable output on stdout")
    .option("--debug", "show stack traces")
    .action(async (a: string, b: string, flags: DiffFlags) => {
      const store = storeFrom(flags);
      const opts = { store, platform: flags.platform, insecureRegistries: flags.insecure, credentials: await credentialOptions(flags) };
      const d = diffImages(await loadSide(a, opts), await loadSide(b, opts));
      if (flags.json) return printJson(d);
      const out = (s: string) => process.stdout.write(s + "\n");
      out(`A: ${d.a.label}  ${d.a.manifestDigest.slice(0, 19)}  (${d.a.source}, ${d.a.layers} layers)`);
      out(`B: ${d.b.label}  ${d.b.manifestDigest.slice(0, 19)}  (${d.b.source}, ${d.b.layers} layers)`);
      if (d.identical) out("identical: same manifest digest");
      out(`  ${"layer".padEnd(22)}${"status".padEnd(11)}${"A".padStart(11)}${"B".padStart(11)}${"to push".padStart(11)}`);
      for (const l of d.layers) {
        const size = (x?: { size: number }) => (x ? formatBytes(x.size) : "-").padStart(11);
        out(`${mark[l.status]} ${l.name.padEnd(22)}${l.status.padEnd(11)}${size(l.a)}${size(l.b)}${(l.pushBytes ? formatBytes(l.pushBytes) : "-").padStart(11)}`);
        for (const p of l.packages.added) out(`      + ${p.id} ${p.to}`);
        for (const p of l.packages.removed) out(`      - ${p.id} ${p.from}`);
        for (const p of l.packages.upgraded) {
          out(p.change === "moved" ? `      > ${p.id} ${p.to} moved from layer ${p.fromLayer}` : `      ^ ${p.id} ${p.from} -> ${p.to} (${p.change})`);
        }
      }
      const s = d.summary;
      out(`layers: ${s.layersAdded} added, ${s.layersRemoved} removed, ${s.layersChanged} changed`);
      if (d.packagesCompared) out(`packages: ${s.packagesAdded} added, ${s.packagesRemoved} removed, ${s.packagesUpgraded} upgraded or downgraded`);
      else out("packages: not compared (no build record in the store for one side; layers compared by name and digest)");
      out(`to push: ${formatBytes(d.pushBytes)} in ${d.pushLayers} layer${d.pushLayers === 1 ? "" : "s"} (B's layers whose digest A lacks)`);
      if (d.partialPullBytes !== undefined) out(`to pull, partially (zstd:chunked; podman/CRI-O with partial pulls, A present): ${formatBytes(d.partialPullBytes)} (the TOCs and the files no zstd:chunked layer of A holds)`);
    });
}
