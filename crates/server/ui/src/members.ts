// The members the page knows of (from `/ui/cluster` and the streams' hellos): index, name, id.

export interface Member {
  name: string;
  id: string;
  clientUrl: string;
}

export class Members {
  list: Member[] = [];
  private byId = new Map<string, number>();
  private byName = new Map<string, number>();

  indexOfName(name: string): number {
    return this.byName.get(name) ?? -1;
  }

  indexOfId(id: string): number {
    return this.byId.get(id) ?? -1;
  }

  /** Adds a member (returns -1 if known already, by name). */
  add(name: string, id: string, clientUrl: string): number {
    if (this.byName.has(name)) return -1;
    this.list.push({ name, id: id.toLowerCase(), clientUrl });
    const i = this.list.length - 1;
    this.byName.set(name, i);
    if (id) this.byId.set(id.toLowerCase(), i);
    return i;
  }

  setId(i: number, id: string): void {
    if (!id) return;
    if (this.list[i].id) this.byId.delete(this.list[i].id);
    this.list[i].id = id;
    this.byId.set(id, i);
  }

  /** A member's name by id, or a short form of the id for one the page does not know. */
  name(id: string): string {
    if (!id) return '';
    const i = this.byId.get(id);
    return i === undefined ? id.replace(/^0+/, '').slice(0, 8) || id : this.list[i].name;
  }
}
