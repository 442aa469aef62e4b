// tasks.js: what the back office's pages (taken.html, contact.html) share about tasks: the
// API's refusals of a task action said in words (who holds a claimed task, a task already
// done, a task outside my departments).
import { ApiError } from './api.js';
import { errorText } from './widgets.js';
import { t } from './i18n.js';

export function refusalText(err) {
  if (err instanceof ApiError && err.status === 409) {
    const held = /claimed by (.+?); only they/.exec(err.detail);
    if (held) return t('tk_claimed_by', { name: held[1] });
    if (/already done/.test(err.detail)) return t('tk_already_done');
    if (/claimed by nobody/.test(err.detail)) return t('tk_not_claimed');
    const st = /the contact is (\w+)/.exec(err.detail);
    if (st) return t('tk_contact_status', { status: t('st_' + st[1]) || st[1] });
  }
  if (err instanceof ApiError && err.status === 403) return t('tk_forbidden');
  return errorText(err);
}

// The open task of a contact that user may finish: one of its departments' (admin: any).
export function myOpenTask(contact, user) {
  return (contact.tasks || []).find((tk) => tk.status === 'open' && (user.role === 'admin'
    || (user.departments || []).includes(tk.department))) || null;
}
