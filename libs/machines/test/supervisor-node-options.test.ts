import { supervisorNodeOptions } from '../src/machines';

describe('supervisorNodeOptions', () => {
  it("keeps the user's NODE_OPTIONS and puts the supervisor's small young generation last (the last value wins)", () => {
    expect(supervisorNodeOptions(undefined)).toBe('--max-semi-space-size=1');
    expect(supervisorNodeOptions('')).toBe('--max-semi-space-size=1');
    expect(supervisorNodeOptions('--max-semi-space-size=64 --trace-warnings')).toBe('--max-semi-space-size=64 --trace-warnings --max-semi-space-size=1');
  });
});
