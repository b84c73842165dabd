// brrrr.demos.viewer runtime: builds a NiiVue viewer from the JSON spec that
// brrrr.demos.viewer.View writes. A classic script (no module syntax), so the same
// file runs inlined in a standalone page, inside an <iframe srcdoc> and from the
// anywidget module. Needs globalThis.niivue (the NiiVue UMD bundle shipped beside it).
//
// The container element reports what happened in data attributes, for people and
// for tests alike: data-brrrr-status is "loading", "ready" or "error"; when ready,
// data-brrrr-info holds JSON facts read back from NiiVue (each volume's dims and
// affine, the crosshair in world mm); on error, data-brrrr-error holds the message,
// which is also shown in the container.
(function () {
  "use strict";
  if (globalThis.brrrrViewer) {
    return;
  }

  function showError(container, message) {
    container.dataset.brrrrStatus = "error";
    container.dataset.brrrrError = message;
    const box = document.createElement("div");
    box.className = "brrrr-viewer-error";
    box.style.cssText =
      "position:absolute;inset:0;display:flex;align-items:center;justify-content:center;" +
      "padding:1em;color:#f88;background:#200;font:14px sans-serif;text-align:center";
    box.textContent = "brrrr viewer: " + message;
    container.appendChild(box);
  }

  function rows(affine) {
    // NiiVue keeps the header affine as 4 rows of 4 numbers.
    return Array.from(affine, (row) => Array.from(row, Number));
  }

  function facts(nv, spec) {
    const mm = nv.frac2mm(nv.scene.crosshairPos);
    return {
      niivue_version: spec.niivue_version,
      slice_type: nv.opts.sliceType,
      crosshair_mm: [mm[0], mm[1], mm[2]],
      volumes: nv.volumes.map((v) => ({
        name: v.name,
        dims: Array.from(v.hdr.dims.slice(1, 4)),
        affine: rows(v.hdr.affine),
        colormap: v.colormap,
        opacity: v.opacity,
        cal_min: v.cal_min,
        cal_max: v.cal_max,
      })),
      unknown_colormaps: spec.layers
        .map((l) => l.colormap)
        .filter((name) => !nv.colormaps().includes(name)),
    };
  }

  function setCrosshair(nv, mm) {
    nv.scene.crosshairPos = nv.mm2frac([mm[0], mm[1], mm[2]]);
    nv.updateGLVolume();
  }

  async function loadLayers(nv, spec) {
    const NVImage = globalThis.niivue.NVImage;
    while (nv.volumes.length > 0) {
      nv.removeVolume(nv.volumes[nv.volumes.length - 1]);
    }
    for (const layer of spec.layers) {
      let image;
      try {
        image = await NVImage.loadFromBase64({
          base64: layer.base64,
          name: layer.name,
          colormap: layer.colormap,
          opacity: layer.opacity,
          cal_min: layer.cal_min,
          cal_max: layer.cal_max,
        });
      } catch (err) {
        throw new Error("NiiVue cannot read layer " + layer.name + ": " + err);
      }
      nv.addVolume(image);
    }
    nv.setSliceType(spec.slice_type);
    if (spec.crosshair_mm) {
      setCrosshair(nv, spec.crosshair_mm);
    }
  }

  // Mount a viewer in `container` (an element with a height). `options.onLocation`
  // receives the crosshair in world mm whenever the user moves it. Resolves to a
  // handle {nv, update(spec), setCrosshair(mm), destroy()}, or to null on error
  // (which is then shown in the container).
  async function mount(container, spec, options) {
    const onLocation = (options && options.onLocation) || null;
    container.dataset.brrrrStatus = "loading";
    if (getComputedStyle(container).position === "static") {
      container.style.position = "relative";
    }
    if (!globalThis.niivue || !globalThis.niivue.Niivue) {
      showError(container, "the NiiVue bundle is not loaded");
      return null;
    }
    const canvas = document.createElement("canvas");
    canvas.style.cssText = "display:block;width:100%;height:100%;outline:none";
    container.appendChild(canvas);
    if (!canvas.getContext("webgl2")) {
      showError(container, "this browser has no WebGL2, which NiiVue needs");
      return null;
    }
    let nv;
    try {
      nv = new globalThis.niivue.Niivue({
        backColor: spec.background,
        crosshairColor: spec.crosshair_color,
        show3Dcrosshair: true,
        isRadiologicalConvention: spec.radiological,
        dragAndDropEnabled: false,
        loadingText: "",
        logLevel: "error",
      });
      await nv.attachToCanvas(canvas);
      await loadLayers(nv, spec);
    } catch (err) {
      showError(container, String((err && err.message) || err));
      return null;
    }
    nv.onLocationChange = (data) => {
      if (onLocation && data && data.mm) {
        onLocation([data.mm[0], data.mm[1], data.mm[2]]);
      }
    };
    let current = spec;
    const report = () => {
      container.dataset.brrrrInfo = JSON.stringify(facts(nv, current));
      container.dataset.brrrrStatus = "ready";
    };
    report();
    return {
      nv: nv,
      async update(next) {
        current = next;
        container.dataset.brrrrStatus = "loading";
        try {
          await loadLayers(nv, next);
        } catch (err) {
          showError(container, String((err && err.message) || err));
          return;
        }
        report();
      },
      setCrosshair(mm) {
        setCrosshair(nv, mm);
        report();
      },
      destroy() {
        nv.onLocationChange = () => {};
        canvas.remove();
      },
    };
  }

  globalThis.brrrrViewer = { mount: mount };
})();
