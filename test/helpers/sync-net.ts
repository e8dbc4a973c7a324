import type { Raft } from '../../src/raft/raft.js';
import type { Message } from '../../src/raft/types.js';

/**
 * Raft cores on a synchronous network: settle() drains every Ready (persisting is a no-op)
 * and delivers its messages at once, until nothing moves. Every message sent is recorded in
 * `sent`; `drop` loses the ones it matches (recorded all the same).
 */
export class SyncNet {
  readonly nodes: Map<string, Raft>;
  readonly sent: Message[] = [];
  drop: (m: Message) => boolean = () => false;

  constructor(nodes: Raft[]) {
    this.nodes = new Map(nodes.map((r) => [r.id, r]));
  }

  settle(): void {
    for (let moved = true; moved; ) {
      moved = false;
      for (const r of this.nodes.values()) {
        while (r.hasReady()) {
          const rd = r.ready();
          r.advance(rd);
          for (const m of rd.messages) {
            moved = true;
            this.sent.push(m);
            if (!this.drop(m)) this.nodes.get(m.to)?.step(m);
          }
        }
      }
    }
  }

  /** n ticks of every member, settling after each. */
  tick(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const r of this.nodes.values()) r.tick();
      this.settle();
    }
  }

  /**
   * `id` campaigns and wins, and its first entry commits everywhere (everyone replicates from
   * here on); `sent` is cleared after. Throws if it did not win.
   */
  elect(id: string): this {
    this.get(id).campaign();
    this.settle();
    if (this.get(id).role !== 'leader') throw new Error(`SyncNet: ${id} did not win its election`);
    this.get(id).propose('warm');
    this.settle();
    this.sent.length = 0;
    return this;
  }

  get(id: string): Raft {
    const r = this.nodes.get(id);
    if (!r) throw new Error(`SyncNet: no member ${id}`);
    return r;
  }
}
