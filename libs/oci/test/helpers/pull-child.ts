// Child process for the concurrency test: pulls one image into SMOLVM_HOME and prints the record.
import { ImageService, RegistryConfig } from '@smolvm/oci';

async function main(): Promise<void> {
  const [reference] = process.argv.slice(2);
  const service = new ImageService({ config: RegistryConfig.fromSettings({}) });
  try {
    const pulled = await service.pull(reference, { concurrency: 4 });
    process.stdout.write(JSON.stringify(pulled.record));
  } finally {
    await service.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
