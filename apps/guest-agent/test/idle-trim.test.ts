import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createIdleTrimmer } from '../src/idle-trim';
import { hasFreePageReporting } from '../src/system';

describe('idle trimmer', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('trims once, idleMs after the last request ended', () => {
    const trim = jest.fn();
    const t = createIdleTrimmer(trim, 5000);
    t.begin();
    jest.advanceTimersByTime(60_000);
    expect(trim).not.toHaveBeenCalled();
    t.end();
    jest.advanceTimersByTime(4999);
    expect(trim).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    // Idle stays idle: no trim every 5 s.
    jest.advanceTimersByTime(60_000);
    expect(trim).toHaveBeenCalledTimes(1);
  });

  it('waits for every overlapping request, and a new request cancels a pending trim', () => {
    const trim = jest.fn();
    const t = createIdleTrimmer(trim, 5000);
    t.begin();
    t.begin();
    t.end();
    jest.advanceTimersByTime(10_000);
    expect(trim).not.toHaveBeenCalled();
    t.end();
    jest.advanceTimersByTime(3000);
    t.begin();
    jest.advanceTimersByTime(10_000);
    expect(trim).not.toHaveBeenCalled();
    t.end();
    jest.advanceTimersByTime(5000);
    expect(trim).toHaveBeenCalledTimes(1);
  });

  it('survives a failing trim and stops on close', () => {
    const trim = jest.fn(() => {
      throw new Error('EACCES');
    });
    const t = createIdleTrimmer(trim, 100);
    t.begin();
    t.end();
    expect(() => jest.advanceTimersByTime(100)).not.toThrow();
    t.begin();
    t.end();
    t.close();
    jest.advanceTimersByTime(1000);
    expect(trim).toHaveBeenCalledTimes(1);
  });
});

describe('hasFreePageReporting', () => {
  it('is true only when a virtio device is bound to the balloon driver', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-virtio-'));
    try {
      expect(hasFreePageReporting(dir)).toBe(false);
      fs.mkdirSync(path.join(dir, 'virtio_balloon'));
      fs.writeFileSync(path.join(dir, 'virtio_balloon', 'bind'), '');
      expect(hasFreePageReporting(dir)).toBe(false);
      fs.symlinkSync('../../../devices/virtio4', path.join(dir, 'virtio_balloon', 'virtio4'));
      expect(hasFreePageReporting(dir)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
