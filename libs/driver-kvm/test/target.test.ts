import { microvmTarget } from '../src';

describe('microvmTarget', () => {
  it("bounds TCG's translation cache (host memory an idle VM holds); KVM has none to bound", () => {
    expect(microvmTarget('tcg').accelOptions).toEqual({ 'tb-size': 32 });
    expect(microvmTarget('kvm').accelOptions).toBeUndefined();
  });
});
