// The registry as an ImageTarget, the interface every output shares (layout,
// archives, engine): has blob? put blob, put manifest. pushImages() is the
// full-featured path (parallel, mounts, progress); this adapter lets generic
// export code (writeImage) treat a registry like any other sink.

import type { Readable } from "node:stream";
import type { Descriptor, ImageTarget } from "../oci/types.ts";
import type { RegistryClient } from "./client.ts";
import { uploadBlob } from "./upload.ts";

export class RegistryTarget implements ImageTarget {
  private pinged = false;
  constructor(private readonly client: RegistryClient, private readonly repository: string) {
    client.addScope(client.pushScope(repository));
  }

  private async ready(): Promise<void> {
    if (!this.pinged) await this.client.ping();
    this.pinged = true;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    await this.ready();
    return (await this.client.hasBlob(this.repository, desc.digest)).exists;
  }

  async putBlob(desc: Descriptor, open: () => Promise<Readable>): Promise<void> {
    await this.ready();
    await uploadBlob(this.client, this.repository, desc, { open: () => open() });
  }

  async putManifest(manifest: Buffer, desc: Descriptor, tag: string): Promise<void> {
    await this.ready();
    await this.client.putManifest(this.repository, tag, manifest, desc.mediaType);
  }

  /** A registry makes a tag visible when its manifest is put; nothing to finish. */
  async commit(): Promise<void> {}

  /** Uploads that did not finish are dropped by the registry's upload purging. */
  async abort(): Promise<void> {}
}
