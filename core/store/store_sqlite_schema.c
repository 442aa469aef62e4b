/* store_sqlite_schema.c: the register's SQLite schema, as the migrations that build it. */
#include "config.h"

#include "store_sqlite.h"

const char *const sq_migrations[] = {
	/* 0 -> 1: the first register */
	"CREATE TABLE parties ("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL DEFAULT 'person',"
	"  name TEXT,"
	"  rrn TEXT UNIQUE,"
	"  bsn TEXT UNIQUE,"
	"  preferred_channel TEXT,"
	"  confidential INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE party_emails (email TEXT PRIMARY KEY, party_id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX party_emails_party ON party_emails(party_id);"
	"CREATE TABLE party_phones (phone TEXT PRIMARY KEY, party_id INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX party_phones_party ON party_phones(party_id);"
	"CREATE TABLE contacts ("
	"  id INTEGER PRIMARY KEY,"
	"  reference TEXT NOT NULL UNIQUE,"
	"  channel TEXT NOT NULL,"
	"  direction TEXT NOT NULL DEFAULT 'in',"
	"  received_at INTEGER NOT NULL,"
	"  handled_at INTEGER,"
	"  updated_at INTEGER NOT NULL,"
	"  party_id INTEGER,"
	"  subject TEXT NOT NULL DEFAULT '',"
	"  body TEXT NOT NULL DEFAULT '',"
	"  answer TEXT,"
	"  product TEXT,"
	"  department TEXT,"
	"  organisation TEXT NOT NULL,"
	"  line INTEGER NOT NULL DEFAULT 1,"
	"  status TEXT NOT NULL DEFAULT 'open',"
	"  priority TEXT NOT NULL DEFAULT 'normal',"
	"  tags TEXT NOT NULL DEFAULT '[]',"
	"  language TEXT,"
	"  confidential INTEGER NOT NULL DEFAULT 0,"
	"  location TEXT,"
	"  meta TEXT NOT NULL DEFAULT '{}',"
	"  created_by TEXT NOT NULL);"
	"CREATE INDEX contacts_party ON contacts(party_id, id);"
	"CREATE INDEX contacts_status ON contacts(status, id);"
	"CREATE INDEX contacts_department ON contacts(department, id);"
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  department TEXT,"
	"  assignee TEXT,"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  due_at INTEGER,"
	"  status TEXT NOT NULL DEFAULT 'open',"
	"  created_at INTEGER NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  done_at INTEGER,"
	"  done_by TEXT);"
	"CREATE INDEX tasks_contact ON tasks(contact_id);"
	"CREATE INDEX tasks_department ON tasks(department, status, id);"
	"CREATE TABLE contact_history ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  from_status TEXT,"
	"  to_status TEXT,"
	"  detail TEXT);"
	"CREATE INDEX contact_history_contact ON contact_history(contact_id, id);"
	"CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, token TEXT NOT NULL,"
	"  action TEXT NOT NULL, object TEXT NOT NULL);"
	"CREATE TABLE tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL,"
	"  departments TEXT NOT NULL DEFAULT '[]', organisation TEXT, created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER);"
	"CREATE TABLE refseq (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);"
	"CREATE TABLE counts (channel TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,"
	"  PRIMARY KEY (channel, status)) WITHOUT ROWID;",
	/* 1 -> 2: rules: assignees, durable timers, the outbox of replies */
	"ALTER TABLE contacts ADD COLUMN assignee TEXT;"
	"CREATE TABLE timers ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  task_id INTEGER,"
	"  kind TEXT NOT NULL,"
	"  due_at INTEGER NOT NULL,"
	"  payload TEXT NOT NULL DEFAULT '{}',"
	"  rule TEXT,"
	"  status TEXT NOT NULL DEFAULT 'pending',"
	"  created_at INTEGER NOT NULL,"
	"  done_at INTEGER);"
	"CREATE INDEX timers_pending ON timers(due_at) WHERE status = 'pending';"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  channel TEXT,"
	"  template TEXT NOT NULL,"
	"  rule TEXT,"
	"  status TEXT NOT NULL DEFAULT 'pending',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  sent_at INTEGER,"
	"  error TEXT);"
	"CREATE INDEX outbox_pending ON outbox(next_at) WHERE status = 'pending';",
	/* 2 -> 3: channels: the messages of a contact, keys that make intake idempotent */
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY,"
	"  contact_id INTEGER NOT NULL,"
	"  direction TEXT NOT NULL,"
	"  channel TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  actor TEXT NOT NULL,"
	"  sender TEXT,"
	"  recipients TEXT NOT NULL DEFAULT '[]',"
	"  subject TEXT NOT NULL DEFAULT '',"
	"  body TEXT NOT NULL DEFAULT '',"
	"  message_id TEXT,"
	"  automatic TEXT,"
	"  attachments TEXT NOT NULL DEFAULT '[]',"
	"  meta TEXT NOT NULL DEFAULT '{}',"
	"  status TEXT NOT NULL DEFAULT 'received');"
	"CREATE INDEX messages_contact ON messages(contact_id, id);"
	"CREATE INDEX messages_message_id ON messages(message_id) WHERE message_id IS NOT NULL;"
	"CREATE TABLE contact_keys (key TEXT PRIMARY KEY, contact_id INTEGER NOT NULL)"
	"  WITHOUT ROWID;"
	"ALTER TABLE outbox ADD COLUMN message_row INTEGER;"
	"ALTER TABLE outbox ADD COLUMN recipient TEXT;"
	"ALTER TABLE outbox ADD COLUMN automatic INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE outbox ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';"
	"CREATE INDEX outbox_recipient ON outbox(recipient, sent_at) WHERE recipient IS NOT NULL;",
	/*
	 * 3 -> 4: identifiers from channels no longer extend parties. A contact
	 * keeps the address it came in with (reply_to) and a flag when its
	 * identifiers disagreed with the register; a merged party points at the
	 * party that took it over. Existing contacts answer to the sender of their
	 * first mail, else to their party's first email or phone, as before.
	 */
	"ALTER TABLE contacts ADD COLUMN reply_to TEXT;"
	"ALTER TABLE contacts ADD COLUMN party_conflict TEXT;"
	"ALTER TABLE parties ADD COLUMN merged_into INTEGER;"
	"UPDATE contacts SET reply_to = coalesce("
	"  (SELECT m.sender FROM messages m WHERE m.contact_id = contacts.id AND m.direction = 'in'"
	"   AND m.sender IS NOT NULL ORDER BY m.id LIMIT 1),"
	"  (SELECT min(e.email) FROM party_emails e WHERE e.party_id = contacts.party_id),"
	"  (SELECT min(f.phone) FROM party_phones f WHERE f.party_id = contacts.party_id));"
	"UPDATE parties SET confidential ="
	"  EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = parties.id) AND"
	"  NOT EXISTS (SELECT 1 FROM contacts c WHERE c.party_id = parties.id AND c.confidential = 0);",
	/*
	 * 4 -> 5: register events, each written in the transaction of the write
	 * that made it. AUTOINCREMENT: an id is never handed out twice, also
	 * after old events are pruned (by age, hence the index on at), so a
	 * reader resuming from the last id it saw misses nothing and sees
	 * nothing twice. payload holds ids and statuses, no personal data.
	 */
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  contact_id INTEGER,"
	"  task_id INTEGER,"
	"  payload TEXT NOT NULL DEFAULT '{}');"
	"CREATE INDEX events_at ON events(at);",
	/*
	 * 5 -> 6: the events table without AUTOINCREMENT and without the index
	 * on at. Both made every write's event row cost twice a history row
	 * (AUTOINCREMENT updates sqlite_sequence in each write; the index was
	 * for a pruning by age that was never written). An id is still never
	 * handed out twice: SQLite takes the largest id + 1, and whatever prunes
	 * events must keep the newest one (it is always wanted: a client resumes
	 * after it), so the largest id never goes away. The ids stay as they were.
	 */
	"CREATE TABLE events_v6 ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  contact_id INTEGER,"
	"  task_id INTEGER,"
	"  payload TEXT NOT NULL DEFAULT '{}');"
	"INSERT INTO events_v6 (id, at, kind, contact_id, task_id, payload)"
	"  SELECT id, at, kind, contact_id, task_id, payload FROM events;"
	"DROP TABLE events;"
	"ALTER TABLE events_v6 RENAME TO events;"
	"DELETE FROM sqlite_sequence WHERE name = 'events';",
	/*
	 * 6 -> 7: staff users, their sessions and failed sign-ins, in the
	 * register so that every node sharing it signs the same people in,
	 * ends the same sessions and throttles the same guessing. A session is
	 * kept by the hash of its id only, as tokens are.
	 */
	"CREATE TABLE users ("
	"  name TEXT PRIMARY KEY,"
	"  hash TEXT NOT NULL,"
	"  role TEXT NOT NULL,"
	"  departments TEXT NOT NULL DEFAULT '[]',"
	"  organisation TEXT,"
	"  extension TEXT,"
	"  disabled INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  changed_at INTEGER NOT NULL);"
	"CREATE TABLE sessions ("
	"  hash TEXT PRIMARY KEY,"
	"  user_name TEXT NOT NULL,"
	"  csrf TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX sessions_user ON sessions(user_name);"
	"CREATE INDEX sessions_expires ON sessions(expires_at);"
	"CREATE TABLE signin_failures ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  username TEXT NOT NULL,"
	"  address TEXT NOT NULL);"
	"CREATE INDEX signin_failures_user ON signin_failures(username, at);"
	"CREATE INDEX signin_failures_address ON signin_failures(address, at);"
	"CREATE INDEX signin_failures_at ON signin_failures(at);",
	/*
	 * 7 -> 8: the search index (STORE_SEARCH). Contentless FTS5 tables of the
	 * words of loket_fold() (core/lib/fold.c, registered on the writer's
	 * connection: the same fold PostgreSQL's loket_fold() does), never the
	 * text itself. A contact's scope is in its row as tokens, so that a
	 * department-scoped query is answered by the index alone (the tokens of
	 * 8 -> 9: loket_scope() in store_sqlite_fold.c; hex: any department name
	 * is one token).
	 * Every write that changes a contact's indexed values (intake, PATCH, a
	 * resolve's answer, whatever comes later) or a party's name queues the row
	 * by trigger, with the words it was indexed under (a contentless row is
	 * taken out by handing back what it was made of); the writer puts the
	 * queue into the index once per batch, before its COMMIT
	 * (SQ_FOLD_FLUSH_SQL, store_sqlite_search.c): in the same transaction as
	 * the writes, but outside their savepoints, where FTS5 (3.40) would write a
	 * segment for every single write. A register taken back to an older schema
	 * by hand keeps its index tables and triggers: they are made again here.
	 */
	"DROP TRIGGER IF EXISTS contacts_fts_insert;"
	"DROP TRIGGER IF EXISTS contacts_fts_update;"
	"DROP TRIGGER IF EXISTS contacts_fts_delete;"
	"DROP TRIGGER IF EXISTS parties_fts_insert;"
	"DROP TRIGGER IF EXISTS parties_fts_update;"
	"DROP TRIGGER IF EXISTS parties_fts_delete;"
	"DROP TABLE IF EXISTS contacts_fts;"
	"DROP TABLE IF EXISTS parties_fts;"
	"DROP TABLE IF EXISTS contacts_fts_pending;"
	"DROP TABLE IF EXISTS parties_fts_pending;"
	"CREATE VIRTUAL TABLE contacts_fts USING fts5(words, scope, content = '',"
	"  detail = column, tokenize = 'unicode61 remove_diacritics 2');"
	"CREATE VIRTUAL TABLE parties_fts USING fts5(name, content = '', detail = none,"
	"  prefix = '2 3', tokenize = 'unicode61 remove_diacritics 2');"
	"CREATE TABLE contacts_fts_pending (id INTEGER PRIMARY KEY, words TEXT, scope TEXT);"
	"CREATE TABLE parties_fts_pending (id INTEGER PRIMARY KEY, name TEXT);"
	"CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN"
	"  INSERT OR IGNORE INTO contacts_fts_pending (id) VALUES (NEW.id);"
	"END;"
	"CREATE TRIGGER contacts_fts_update AFTER UPDATE OF reference, subject, body, answer,"
	"  department, organisation, confidential ON contacts"
	"  WHEN OLD.reference IS NOT NEW.reference OR OLD.subject IS NOT NEW.subject"
	"    OR OLD.body IS NOT NEW.body OR OLD.answer IS NOT NEW.answer"
	"    OR OLD.department IS NOT NEW.department OR OLD.organisation IS NOT NEW.organisation"
	"    OR OLD.confidential IS NOT NEW.confidential BEGIN"
	"  INSERT OR IGNORE INTO contacts_fts_pending (id, words, scope) VALUES (OLD.id,"
	"    loket_fold(OLD.reference, OLD.subject, OLD.body, OLD.answer),"
	"    loket_scope(OLD.department, OLD.organisation, OLD.confidential));"
	"END;"
	"CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN"
	"  INSERT OR IGNORE INTO contacts_fts_pending (id, words, scope) VALUES (OLD.id,"
	"    loket_fold(OLD.reference, OLD.subject, OLD.body, OLD.answer),"
	"    loket_scope(OLD.department, OLD.organisation, OLD.confidential));"
	"END;"
	"CREATE TRIGGER parties_fts_insert AFTER INSERT ON parties BEGIN"
	"  INSERT OR IGNORE INTO parties_fts_pending (id) VALUES (NEW.id);"
	"END;"
	"CREATE TRIGGER parties_fts_update AFTER UPDATE OF name ON parties"
	"  WHEN OLD.name IS NOT NEW.name BEGIN"
	"  INSERT OR IGNORE INTO parties_fts_pending (id, name) VALUES (OLD.id, loket_fold(OLD.name));"
	"END;"
	"CREATE TRIGGER parties_fts_delete AFTER DELETE ON parties BEGIN"
	"  INSERT OR IGNORE INTO parties_fts_pending (id, name) VALUES (OLD.id, loket_fold(OLD.name));"
	"END;"
	"INSERT INTO contacts_fts (rowid, words, scope) SELECT id,"
	"  loket_fold(reference, subject, body, answer),"
	"  loket_scope(department, organisation, confidential) FROM contacts;"
	"INSERT INTO parties_fts (rowid, name) SELECT id, loket_fold(name) FROM parties;",
	/*
	 * 8 -> 9: the contacts' scope tokens made selective (loket_scope(),
	 * store_sqlite_fold.c): a department and confidentiality in one token
	 * ("d" + hex + "c0", "d" + hex + "o" + hex) in place of "d" + hex and
	 * "c0", so that a department-scoped query ORs a few tokens of at most a
	 * department's contacts instead of intersecting the words with "c0",
	 * which holds nearly every contact. A contentless row is taken out only
	 * by handing back what it was made of, which the old tokens no longer
	 * are: the index of the contacts is emptied and made again, and the
	 * queue (empty between batches) dropped with it.
	 */
	"INSERT INTO contacts_fts (contacts_fts) VALUES ('delete-all');"
	"DELETE FROM contacts_fts_pending;"
	"INSERT INTO contacts_fts (rowid, words, scope) SELECT id,"
	"  loket_fold(reference, subject, body, answer),"
	"  loket_scope(department, organisation, confidential) FROM contacts;",
	/*
	 * 9 -> 10: a contact's row in the index is its id negated
	 * (SQ_FOLD_FLUSH_1/2), so that the newest matches come first in FTS5's
	 * ascending order. Walking backwards, FTS5 reads each long list (a
	 * common word, a big department's scope token) whole; forwards it seeks
	 * past what the other terms rule out: a two-word search under a
	 * department scope at 10M contacts went from 44 to 26 ms p99 in the
	 * index alone (bench/search's queries). Emptied and made again, as
	 * 8 -> 9.
	 */
	"INSERT INTO contacts_fts (contacts_fts) VALUES ('delete-all');"
	"DELETE FROM contacts_fts_pending;"
	"INSERT INTO contacts_fts (rowid, words, scope) SELECT -id,"
	"  loket_fold(reference, subject, body, answer),"
	"  loket_scope(department, organisation, confidential) FROM contacts ORDER BY id DESC;",
	/*
	 * 10 -> 11: the audit trail read back (STORE_AUDIT_LIST, GET
	 * /api/v1/audit): each filter is answered from an index, newest first,
	 * never by a scan of the whole trail: by staff member (token), by what
	 * was done (action), by what was read (object: a party, one of its
	 * contacts), by time.
	 */
	"CREATE INDEX IF NOT EXISTS audit_token ON audit(token, id);"
	"CREATE INDEX IF NOT EXISTS audit_action ON audit(action, id);"
	"CREATE INDEX IF NOT EXISTS audit_object ON audit(object, id);"
	"CREATE INDEX IF NOT EXISTS audit_at ON audit(at);",
};
const int sq_schema_version = (int)(sizeof(sq_migrations) / sizeof(sq_migrations[0]));
