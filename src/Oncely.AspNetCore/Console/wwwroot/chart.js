// Horizontal bar charts drawn as inline SVG by the page itself (no chart library): every bar carries its number as
// text and a <title> for hover, and the chart's <desc> lists every value for screen readers.

const SVG = 'http://www.w3.org/2000/svg';

function svgElement(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [attribute, value] of Object.entries(attributes)) {
    element.setAttribute(attribute, String(value));
  }

  if (text !== undefined) {
    element.textContent = text;
  }

  return element;
}

/**
 * Replaces the content of container with a chart of bars: [{ label, value, text, className }].
 * text is what is written next to the bar (default: the value).
 */
export function drawBars(container, { id, title, bars }) {
  const rowHeight = 30;
  const labelWidth = 120;
  const barSpace = 190;
  const width = labelWidth + barSpace + 60;
  const height = bars.length * rowHeight + 10;
  const max = Math.max(1, ...bars.map(bar => bar.value));
  const svg = svgElement('svg', {
    class: 'chart',
    id,
    role: 'img',
    viewBox: `0 0 ${width} ${height}`,
    'aria-labelledby': `${id}-title ${id}-desc`,
  });
  svg.append(
    svgElement('title', { id: `${id}-title` }, title),
    svgElement('desc', { id: `${id}-desc` }, bars.map(bar => `${bar.label}: ${bar.text ?? bar.value}`).join('; ')));
  svg.append(svgElement('line', { class: 'axis', x1: labelWidth, y1: 2, x2: labelWidth, y2: height - 4 }));
  bars.forEach((bar, index) => {
    const y = 5 + index * rowHeight;
    const length = bar.value === 0 ? 0 : Math.max(2, Math.round(barSpace * bar.value / max));
    const group = svgElement('g', { class: 'bar', 'data-label': bar.label, 'data-value': bar.value });
    group.append(svgElement('title', {}, `${bar.label}: ${bar.text ?? bar.value}`));
    group.append(svgElement('text', { x: labelWidth - 6, y: y + 15, 'text-anchor': 'end' }, bar.label));
    group.append(svgElement('rect', { class: bar.className, x: labelWidth, y, width: length, height: rowHeight - 10, rx: 2 }));
    group.append(svgElement('text', { x: labelWidth + length + 6, y: y + 15 }, bar.text ?? String(bar.value)));
    svg.append(group);
  });
  container.replaceChildren(svg);
}
