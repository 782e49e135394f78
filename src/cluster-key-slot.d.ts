/** cluster-key-slot (ioredis' own dependency): the Redis Cluster slot of a key, hash tags applied. */
declare module "cluster-key-slot" {
  /** The slot (0 … 16383) of `key`. */
  export default function calculateSlot(key: string | Buffer): number;
}
