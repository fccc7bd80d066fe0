/* Daydream — sizes of files for people. Pure: no DOM, unit-tested with node --test. */

/** 512 → "512 B", 2048 → "2 KB", 5_300_000 → "5.1 MB", 3.2e9 → "3.0 GB"; "" when unknown. */
export function formatBytes(bytes) {
  if (typeof bytes !== "number" || !isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return Math.round(bytes) + " B";
  if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)) + " KB";
  const mb = bytes / (1024 * 1024);
  if (mb < 1024) return (mb < 100 ? mb.toFixed(1) : String(Math.round(mb))) + " MB";
  return (mb / 1024).toFixed(1) + " GB";
}
