import { mountPage, html, Frame } from './widgets.js';
mountPage(({ user }) => html`<${Frame} user=${user} title="Mijn taken"><//>`);
