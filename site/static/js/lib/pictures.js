/* Daydream — a picture file read in the browser as a data URL, the way the API takes an
 * image in a task (a control unit's, a reference's, a picture to edit): scaled down, shape
 * kept, to at most `maxPixels` pixels, then WebP at quality 0.9 (PNG where the browser
 * cannot write WebP). The server checks it as it checks an upload. */

/** The size of a picture of w × h scaled down to at most maxPixels (unchanged when it fits). */
export function fittedSize(w, h, maxPixels) {
  if (!(maxPixels > 0) || w * h <= maxPixels) return [w, h];
  const scale = Math.sqrt(maxPixels / (w * h));
  return [Math.max(1, Math.floor(w * scale)), Math.max(1, Math.floor(h * scale))];
}

/** Resolves to {data, width, height, thumbnail_url} (thumbnail_url: the data URL), or null
 * when the browser cannot decode the file. */
export function pictureData(file, maxPixels) {
  return new Promise((resolve) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      const [w, h] = fittedSize(img.naturalWidth, img.naturalHeight, maxPixels);
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(img, 0, 0, w, h);
      URL.revokeObjectURL(url);
      let data = canvas.toDataURL("image/webp", 0.9);
      if (!/^data:image\/webp/.test(data)) data = canvas.toDataURL("image/png");
      resolve({ data, width: w, height: h, thumbnail_url: data });
    };
    img.onerror = () => { URL.revokeObjectURL(url); resolve(null); };
    img.src = url;
  });
}
