// Importing the built-in drivers registers them in preference order; the early-start entry
// registers their early starts without loading the drivers.
import { findEarlyStart, listDrivers } from '@smolvm/driver-api';

it('the early-start entry registers the kvm early start, and loads no driver', () => {
  require('../src/early-start');
  expect(typeof findEarlyStart('kvm')).toBe('function');
  expect(findEarlyStart('hvf')).toBeUndefined();
  expect(listDrivers()).toEqual([]);
});

it('importing the lib registers kvm, then hvf', () => {
  require('../src');
  expect(listDrivers().map((d) => d.name)).toEqual(['kvm', 'hvf']);
});
