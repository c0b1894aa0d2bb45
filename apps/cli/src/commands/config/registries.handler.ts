import { spawnSync } from 'node:child_process';
import { SmolvmError } from '@smolvm/common';
import { ensureRegistriesFile, loadRegistriesFile, registriesFilePath } from '@smolvm/oci';
import type { GlobalArgs } from '../../context';

export function runRegistriesEdit(args: GlobalArgs): void {
  const file = ensureRegistriesFile(registriesFilePath());
  const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
  // The editor string may carry arguments ("code --wait"): split on whitespace, no shell.
  const [command, ...editorArgs] = editor.trim().split(/\s+/);
  const result = spawnSync(command, [...editorArgs, file], { stdio: 'inherit' });
  if (result.error) {
    throw new SmolvmError(
      `cannot start the editor '${command}': ${(result.error as NodeJS.ErrnoException).code ?? result.error.message}`,
      {
        remedy: `set EDITOR to an installed editor, or edit ${file} directly`,
      },
    );
  }
  if (result.status !== 0) {
    throw new SmolvmError(`the editor '${command}' exited with status ${result.status}`, {
      remedy: `the file ${file} was left as the editor saved it`,
    });
  }
  // An invalid file stays as saved; the error names file:line and how to fix it.
  const parsed = loadRegistriesFile(file);
  if (!args.quiet) process.stderr.write(`${file}: ok (${parsed.registries.size} registries)\n`);
}
