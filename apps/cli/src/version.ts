import { version } from '../package.json';

export function smolvmVersion(): string {
  return version;
}
