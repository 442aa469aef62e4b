// i18n.js: the UI's words in Dutch (nl-BE, the default) and English; the choice is kept in
// localStorage and set on <html lang>. Words follow DESIGN.md's glossary.

const WORDS = {
  'nl-BE': {
    app: 'loket',
    skip: 'Naar de inhoud',
    language: 'Taal',
    signin_title: 'Aanmelden',
    username: 'Gebruikersnaam',
    password: 'Wachtwoord',
    signin: 'Aanmelden',
    signout: 'Afmelden',
    signin_failed: 'Aanmelden is mislukt. Controleer uw gegevens en probeer opnieuw.',
    signin_wait: 'Te veel pogingen. Wacht {s} seconden en probeer dan opnieuw.',
    signin_unavailable: 'Aanmelden kan nu niet: {detail}',
    required: 'Vul dit veld in.',
    nav: 'Hoofdmenu',
    nav_contactcenter: 'Contactcenter',
    nav_tasks: 'Mijn taken',
    signed_in_as: 'Aangemeld als {name}',
    loading: 'Laden…',
    error: 'Er ging iets mis: {detail}',
    not_built: 'Deze functie is nog niet beschikbaar op deze server.',
    // contactcenter
    cc_title: 'Contactcenter',
    cc_new: 'Contact registreren',
    channel: 'Kanaal',
    ch_phone: 'telefoon',
    ch_counter: 'balie',
    ch_email: 'e-mail',
    ch_web: 'e-loket',
    citizen: 'Burger',
    citizen_search: 'Burger zoeken (naam, e-mail, telefoon of rijksregisternummer)',
    search: 'Zoeken',
    no_results: 'Niets gevonden.',
    choose: 'Kiezen',
    chosen: 'Gekozen',
    new_citizen: 'Nieuwe burger',
    anonymous: 'Anoniem (geen burger)',
    name: 'Naam',
    email: 'E-mail',
    phone: 'Telefoon',
    rrn: 'Rijksregisternummer',
    bsn: 'BSN',
    product: 'Product',
    product_search: 'Product zoeken (naam of trefwoord)',
    standard_answer: 'Standaardantwoord',
    no_standard_answer: 'Voor dit product is geen standaardantwoord.',
    subject: 'Onderwerp',
    question: 'Vraag',
    answer: 'Antwoord',
    resolve: 'Oplossen',
    escalate: 'Doorverwijzen',
    department: 'Dienst',
    reason: 'Reden',
    due: 'Uiterlijk beantwoord op {at} (binnen {within} openingstijd)',
    due_none: 'Kies een dienst om de termijn te zien.',
    confirm_escalate: 'Doorverwijzing bevestigen',
    cancel: 'Annuleren',
    saved_resolved: 'Contact {ref} is opgelost.',
    saved_escalated: 'Contact {ref} is doorverwezen naar {department}.',
    saved_other: 'Contact {ref} is geregistreerd (status: {status}).',
    open_contact: 'Contact openen',
    open_citizen: 'Burger openen',
    note: 'Interne notitie',
    add_note: 'Notitie toevoegen',
    note_added: 'Notitie toegevoegd.',
    my_recent: 'Mijn recente contacten',
    none_yet: 'Nog geen.',
    // contact status and fields
    st_open: 'open',
    st_resolved: 'opgelost',
    st_escalated: 'doorverwezen',
    st_closed: 'afgesloten',
    reference: 'Referentie',
    status: 'Status',
    received: 'Ontvangen',
    line: 'Lijn',
    line_1: 'eerste lijn',
    line_2: 'tweede lijn',
    // contact page
    contact_title: 'Contact {ref}',
    history: 'Geschiedenis',
    messages: 'Berichten',
    tasks: 'Taken',
    notes: 'Notities',
    reply_title: 'Antwoorden per e-mail',
    to: 'Aan',
    message: 'Bericht',
    attachments: 'Bijlagen',
    send: 'Versturen',
    sent: 'Bericht staat klaar om te versturen.',
    mark_done: 'Afhandelen',
    done: 'Afgehandeld',
    msg_in: 'binnengekomen',
    msg_out: 'verstuurd',
    from: 'Van',
    // citizen page
    burger_title: 'Burger',
    identifiers: 'Gegevens',
    edit: 'Gegevens wijzigen',
    add: 'Toevoegen',
    remove: 'Verwijderen',
    confirm_edit: 'De burger heeft deze wijziging bevestigd',
    confirm_edit_q: 'Wijziging nakijken',
    save: 'Opslaan',
    saved: 'Opgeslagen.',
    timeline: 'Tijdlijn (alle kanalen)',
    duplicates: 'Mogelijke dubbels',
    merge: 'Samenvoegen',
    confirm_merge: 'Samenvoegen bevestigen: {a} en {b} zijn dezelfde persoon',
    merged: 'Samengevoegd.',
    // tasks
    tasks_title: 'Mijn taken',
    overdue: 'Te laat',
    due_at: 'Termijn',
    assignee: 'Behandelaar',
    claim: 'Opnemen',
    release: 'Vrijgeven',
    send_back: 'Terug naar eerste lijn',
    forward: 'Doorsturen',
    confirm: 'Bevestigen',
    task_for: 'Taak voor {department}',
    nobody: 'niemand',
    live: 'Nieuwe taken verschijnen vanzelf.',
  },
  en: {
    app: 'loket',
    skip: 'Skip to content',
    language: 'Language',
    signin_title: 'Sign in',
    username: 'User name',
    password: 'Password',
    signin: 'Sign in',
    signout: 'Sign out',
    signin_failed: 'Signing in failed. Check your details and try again.',
    signin_wait: 'Too many attempts. Wait {s} seconds, then try again.',
    signin_unavailable: 'Signing in is not possible now: {detail}',
    required: 'Fill in this field.',
    nav: 'Main menu',
    nav_contactcenter: 'Contact centre',
    nav_tasks: 'My tasks',
    signed_in_as: 'Signed in as {name}',
    loading: 'Loading…',
    error: 'Something went wrong: {detail}',
    not_built: 'This function is not available on this server yet.',
    cc_title: 'Contact centre',
    cc_new: 'Log a contact',
    channel: 'Channel',
    ch_phone: 'phone',
    ch_counter: 'counter',
    ch_email: 'email',
    ch_web: 'e-counter',
    citizen: 'Citizen',
    citizen_search: 'Find a citizen (name, email, phone or national register number)',
    search: 'Search',
    no_results: 'Nothing found.',
    choose: 'Choose',
    chosen: 'Chosen',
    new_citizen: 'New citizen',
    anonymous: 'Anonymous (no citizen)',
    name: 'Name',
    email: 'Email',
    phone: 'Phone',
    rrn: 'National register number',
    bsn: 'BSN',
    product: 'Product',
    product_search: 'Find a product (name or keyword)',
    standard_answer: 'Standard answer',
    no_standard_answer: 'This product has no standard answer.',
    subject: 'Subject',
    question: 'Question',
    answer: 'Answer',
    resolve: 'Resolve',
    escalate: 'Refer',
    department: 'Department',
    reason: 'Reason',
    due: 'To be answered by {at} (within {within} of opening hours)',
    due_none: 'Choose a department to see the deadline.',
    confirm_escalate: 'Confirm referral',
    cancel: 'Cancel',
    saved_resolved: 'Contact {ref} is resolved.',
    saved_escalated: 'Contact {ref} was referred to {department}.',
    saved_other: 'Contact {ref} is logged (status: {status}).',
    open_contact: 'Open contact',
    open_citizen: 'Open citizen',
    note: 'Internal note',
    add_note: 'Add note',
    note_added: 'Note added.',
    my_recent: 'My recent contacts',
    none_yet: 'None yet.',
    st_open: 'open',
    st_resolved: 'resolved',
    st_escalated: 'referred',
    st_closed: 'closed',
    reference: 'Reference',
    status: 'Status',
    received: 'Received',
    line: 'Line',
    line_1: 'first line',
    line_2: 'second line',
    contact_title: 'Contact {ref}',
    history: 'History',
    messages: 'Messages',
    tasks: 'Tasks',
    notes: 'Notes',
    reply_title: 'Answer by email',
    to: 'To',
    message: 'Message',
    attachments: 'Attachments',
    send: 'Send',
    sent: 'The message is queued to be sent.',
    mark_done: 'Mark done',
    done: 'Done',
    msg_in: 'received',
    msg_out: 'sent',
    from: 'From',
    burger_title: 'Citizen',
    identifiers: 'Details',
    edit: 'Change details',
    add: 'Add',
    remove: 'Remove',
    confirm_edit: 'The citizen confirmed this change',
    confirm_edit_q: 'Review the change',
    save: 'Save',
    saved: 'Saved.',
    timeline: 'Timeline (all channels)',
    duplicates: 'Possible duplicates',
    merge: 'Merge',
    confirm_merge: 'Confirm merge: {a} and {b} are the same person',
    merged: 'Merged.',
    tasks_title: 'My tasks',
    overdue: 'Overdue',
    due_at: 'Due',
    assignee: 'Assignee',
    claim: 'Claim',
    release: 'Release',
    send_back: 'Back to the first line',
    forward: 'Forward',
    confirm: 'Confirm',
    task_for: 'Task for {department}',
    nobody: 'nobody',
    live: 'New tasks appear by themselves.',
  },
};

export const LANGUAGES = [
  { code: 'nl-BE', name: 'Nederlands' },
  { code: 'en', name: 'English' },
];
const KEY = 'loket.lang';
const listeners = new Set();

function stored() {
  try {
    const v = localStorage.getItem(KEY);
    return v in WORDS ? v : 'nl-BE';
  } catch (e) {
    return 'nl-BE';
  }
}

let current = stored();
document.documentElement.lang = current;

export function lang() {
  return current;
}

export function setLang(code) {
  if (!(code in WORDS)) return;
  current = code;
  document.documentElement.lang = code;
  try {
    localStorage.setItem(KEY, code);
  } catch (e) {
    // a browser without storage keeps the choice for this page only
  }
  for (const fn of listeners) fn(code);
}

// Calls fn(code) whenever the language changes; returns the function that stops it.
export function onLang(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// The word for key, with {name} placeholders filled from params (as text, never markup).
export function t(key, params) {
  let s = WORDS[current][key] ?? WORDS['nl-BE'][key] ?? key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  return s;
}

// A register time (RFC 3339 UTC) in the reader's time zone and language.
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(current, { dateStyle: 'medium', timeStyle: 'short' });
}
