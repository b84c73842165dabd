// anywidget front end of brrrr.demos.viewer.View.widget(): the same runtime as the
// standalone page (viewer.js), mounted in the widget's element, with the `crosshair`
// trait kept in step both ways and `spec` changes reloading the layers.

function ensureLoaded(model) {
  if (!globalThis.niivue) {
    // The UMD bundle runs with define/exports/module hidden: classic Jupyter loads
    // require.js, whose AMD `define` would otherwise capture NiiVue instead of the global.
    new Function("define", "exports", "module", model.get("_niivue_js")).call(globalThis);
  }
  if (!globalThis.brrrrViewer) {
    new Function(model.get("_viewer_js")).call(globalThis);
  }
}

async function render({ model, el }) {
  ensureLoaded(model);
  const box = document.createElement("div");
  box.className = "brrrr-viewer";
  box.style.width = "100%";
  box.style.height = model.get("height") + "px";
  el.appendChild(box);
  const handle = await globalThis.brrrrViewer.mount(box, model.get("spec"), {
    onLocation(mm) {
      model.set("crosshair", mm);
      model.save_changes();
    },
  });
  if (!handle) {
    return;
  }
  const onSpec = () => handle.update(model.get("spec"));
  const onCrosshair = () => {
    const mm = model.get("crosshair");
    if (mm && mm.length === 3) {
      handle.setCrosshair(mm);
    }
  };
  const onHeight = () => {
    box.style.height = model.get("height") + "px";
  };
  onCrosshair(); // the trait, when set, is the live position (e.g. a saved notebook's)
  model.on("change:spec", onSpec);
  model.on("change:crosshair", onCrosshair);
  model.on("change:height", onHeight);
  return () => {
    model.off("change:spec", onSpec);
    model.off("change:crosshair", onCrosshair);
    model.off("change:height", onHeight);
    handle.destroy();
  };
}

export default { render };
