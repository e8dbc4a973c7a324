import { describe, expect, it } from 'vitest';
import { RoundTrips } from '../../src/host/round-trips.js';

describe('RoundTrips', () => {
  it('times an answer against the heartbeat it echoes, not the latest one sent', () => {
    const t = new RoundTrips();
    t.sent('b', 1, 3, 100);
    t.sent('b', 2, 3, 150);
    t.sent('b', 3, 3, 200);
    // A slow answer to the first heartbeat arrives after two more were sent.
    expect(t.answered('b', 1, 3, 260)).toBe(160);
    expect(t.answered('b', 3, 3, 270)).toBe(70);
    // Heartbeat 2 was dropped with the answer to 3 (lost or overtaken): its late answer is not timed.
    expect(t.answered('b', 2, 3, 280)).toBeNull();
    const f = t.figures(300).get('b')!;
    expect(f).toEqual({ lastMs: 70, ageMs: 30, samples: 2, meanMs: 115, maxMs: 160 });
  });

  it('matches the term as well as the sequence number', () => {
    const t = new RoundTrips();
    t.sent('b', 7, 2, 0);
    expect(t.answered('b', 7, 3, 10)).toBeNull();
    expect(t.answered('c', 7, 2, 10)).toBeNull();
    expect(t.answered('b', 7, 2, 12)).toBe(12);
    // Answered once: a duplicate answer is not timed again.
    expect(t.answered('b', 7, 2, 14)).toBeNull();
  });

  it('keeps the newest 64 unanswered heartbeats of a silent peer, across the ring boundary', () => {
    const t = new RoundTrips();
    for (let seq = 1; seq <= 200; seq++) t.sent('b', seq, 1, seq * 10);
    // The oldest 136 were forgotten; the 64 newest still match, wherever the ring wrapped.
    expect(t.answered('b', 136, 1, 5000)).toBeNull();
    expect(t.answered('b', 137, 1, 5000)).toBe(5000 - 1370);
    expect(t.answered('b', 200, 1, 5000)).toBe(3000);
    // Everything up to 200 is answered or dropped now; new sends start a fresh run.
    t.sent('b', 201, 1, 6000);
    expect(t.answered('b', 201, 1, 6004)).toBe(4);
    expect(t.figures(6004).get('b')!.samples).toBe(3);
  });

  it('starts figures over for a new leadership but keeps histograms', () => {
    const t = new RoundTrips();
    t.sent('b', 1, 1, 0);
    t.sent('c', 1, 1, 0);
    expect(t.answered('b', 1, 1, 2)).toBe(2);
    t.sent('b', 2, 1, 10);
    t.restart();
    // Heartbeats of the old leadership are forgotten, and so are its figures.
    expect(t.answered('b', 2, 1, 20)).toBeNull();
    expect(t.figures(20).size).toBe(0);
    t.sent('b', 1, 2, 30);
    expect(t.answered('b', 1, 2, 31)).toBe(1);
    expect([...t.figures(31).keys()]).toEqual(['b']);
    // Prometheus histograms never drop what they counted: both round trips of b, none of c.
    const h = t.histograms();
    expect(h.get('b')!.count).toBe(2);
    expect(h.get('b')!.sum_s).toBeCloseTo(0.003, 9);
    expect(h.has('c')).toBe(false);
  });
});
