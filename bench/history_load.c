/* history_load.c: the fast path of bench/history: fills an empty loket register (made by
 * loketd itself, so the schema is loketd's own) with N contacts over P parties, straight
 * through SQLite, in big transactions and without journal or fsync.
 *
 * usage: history_load -f REGISTER [-n CONTACTS] [-p PARTIES] [-s SEED] [-H] [-W] [-S]
 *   -n  contacts (default 10000000)
 *   -p  parties (default 1000000); each has an email, every 2nd a phone, every 3rd an RRN
 *   -s  seed of the pseudo-random spread (default 1)
 *   -H  also write the "created" row of contact_history for every contact (slower; the party
 *       history endpoint does not read it)
 *   -W  subjects and bodies of words drawn from a vocabulary with a long tail (word k of
 *       about 100,000 comes up in proportion to 1/k, as in real text): what bench/search
 *       searches; without it every subject is "Vraag N over PRODUCT"
 *   -S  leave the search index out: the triggers that feed it are dropped during the load
 *       and made again after it, so the index holds none of the loaded rows (for benchmarks
 *       that never search; bench/history). Without it the index is fed as loketd feeds it:
 *       its triggers queue the rows, and the queue goes into the index at the end
 *       (SQ_FOLD_FLUSH_SQL, with loketd's own SQL functions: store_sqlite_fold.c)
 *
 * Spread: 5 % of the contacts are anonymous, 10 % go to a "frequent" 1 % of the parties
 * (about 100 contacts each), the rest uniformly to all parties (about 8.5 each). Contacts are
 * spread evenly in time, ending now, over as many years as keep every year's reference
 * sequence below 1,000,000 (YYYY-NNNNNN); refseq and counts are set as loketd would have them.
 *
 * Secondary indexes of the tables it fills are dropped first and built again at the end (one
 * sort each instead of 10M random B-tree inserts). Prints one line of key=value pairs.
 */
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_sqlite_fold.h"

#define LOAD_YEAR_MAX 950000
#define LOAD_MAX_INDEXES 64
#define LOAD_MAX_YEARS 200

static const char *const load_tables[] = { "parties", "party_emails", "party_phones",
	"contacts", "contact_history", NULL };

static const struct {
	const char *channel;
	int weight;
} load_channels[] = { { "phone", 40 }, { "email", 25 }, { "web", 20 }, { "counter", 15 } };

static const struct {
	const char *department;
	const char *organisation;
	const char *product;
} load_departments[] = {
	{ "burgerzaken", "gemeente", "identiteitskaart" },
	{ "omgeving", "gemeente", "omgevingsvergunning" },
	{ "sociale_dienst", "ocmw", "leefloon" },
};

/* status, line, whether handled_at is set; in proportion 5:2:1:2 */
static const struct {
	const char *status;
	int line;
	int handled;
} load_statuses[] = {
	{ "resolved", 1, 1 }, { "resolved", 1, 1 }, { "resolved", 1, 1 }, { "resolved", 1, 1 },
	{ "resolved", 1, 1 }, { "closed", 2, 1 }, { "closed", 2, 1 }, { "escalated", 2, 0 },
	{ "open", 1, 0 }, { "open", 1, 0 },
};

static const char *const load_bodies[] = {
	"Wanneer kan ik mijn nieuwe identiteitskaart afhalen?",
	"Goedemiddag, ik had graag geweten of ik voor mijn aanvraag een afspraak moet maken aan de "
	"balie of dat het ook digitaal kan.",
	"Mijn buurman bouwt een carport zonder vergunning, bij wie kan ik terecht?",
	"Ik wil een attest van gezinssamenstelling, kan dat via het e-loket? Alvast bedankt voor "
	"uw antwoord. Met vriendelijke groeten.",
	"Vraag over de stand van mijn dossier bij de sociale dienst.",
};

/* The head of the vocabulary of -W; the tail is made-up words "t" + a number. */
static const char *const load_words[] = { "aanvraag", "adres", "afspraak", "attest", "balie",
	"bouwvergunning", "dossier", "paspoort", "identiteitskaart", "rijbewijs", "uittreksel",
	"geboorteakte", "huwelijk", "verhuis", "domicilie", "afval", "container", "parkeerkaart",
	"belasting", "aanslag", "leefloon", "huurwaarborg", "premie", "renovatie", "subsidie",
	"financiële", "ondersteuning", "kinderopvang", "school", "inschrijving", "sportkamp",
	"bibliotheek", "zwembad", "wegenwerken", "verlichting", "fietspad", "stoep", "boom",
	"snoeien", "klacht", "geluidsoverlast", "buren", "hond", "evenement", "vergunning", "terras",
	"markt", "standplaats", "begraafplaats", "concessie", "één", "vraag", "antwoord", "dringend",
	"geïnteresseerd", "termijn", "betaling", "factuur", "herinnering", "bezwaar", "beroep",
	"digitaal", "loket", "formulier" };
#define LOAD_VOCABULARY 100000

struct load {
	sqlite3 *db;
	uint64_t rng;
	long long contacts, parties;
	int history, words, no_search;
	char *index_sql[LOAD_MAX_INDEXES];
	int nindex;
	char *trigger_sql[LOAD_MAX_INDEXES];
	int ntrigger;
	struct {
		int year;
		long long last;
	} years[LOAD_MAX_YEARS];
	int nyears;
	long long counts[4][10];
};

static uint64_t
load_rand(struct load *l)
{
	/* splitmix64: fast, and the same spread for the same seed */
	uint64_t z = (l->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
load_exec(struct load *l, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(l->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "history_load: %s\n  in: %.200s\n", err != NULL ? err : "?", sql);
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
load_prepare(struct load *l, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "history_load: the register's schema does not fit this loader "
				"(update bench/history_load.c): %s\n  in: %s\n",
		    sqlite3_errmsg(l->db), sql);
		return NULL;
	}
	return st;
}

static int
load_step(struct load *l, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "history_load: insert failed: %s\n", sqlite3_errmsg(l->db));
		return -1;
	}
	return 0;
}

/* Appends n words of the -W vocabulary to buf (len bytes), separated by spaces. */
static void
load_text(struct load *l, char *buf, size_t len, int n)
{
	size_t used = 0;
	const size_t head = sizeof(load_words) / sizeof(load_words[0]);

	buf[0] = '\0';
	for (int i = 0; i < n && used + 16 < len; i++) {
		/* Log-uniform over 1..LOAD_VOCABULARY: word k comes up in proportion to 1/k. */
		double u = (double)(load_rand(l) >> 11) / 9007199254740992.0;
		size_t k = (size_t)exp(u * log((double)LOAD_VOCABULARY)) - 1;
		int w;

		if (k < head)
			w = snprintf(buf + used, len - used, "%s%s", i > 0 ? " " : "", load_words[k]);
		else
			w = snprintf(buf + used, len - used, "%st%zu", i > 0 ? " " : "", k);
		if (w < 0 || (size_t)w >= len - used)
			break;
		used += (size_t)w;
	}
}

/* -S: saves and drops the triggers that feed the search index; load_triggers_make restores. */
static int
load_triggers_drop(struct load *l)
{
	sqlite3_stmt *st = load_prepare(l, "SELECT name, sql FROM sqlite_master WHERE type ="
					   " 'trigger' AND name LIKE '%fts%'");
	char drop[256];
	int rc = 0;

	if (st == NULL)
		return -1;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW && l->ntrigger < LOAD_MAX_INDEXES) {
		l->trigger_sql[l->ntrigger++] = strdup((const char *)sqlite3_column_text(st, 1));
		snprintf(drop, sizeof(drop), "DROP TRIGGER \"%s\"", sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		rc = load_exec(l, drop);
	}
	sqlite3_finalize(st);
	return rc;
}

static int
load_triggers_make(struct load *l)
{
	for (int i = 0; i < l->ntrigger; i++)
		if (load_exec(l, l->trigger_sql[i]) < 0)
			return -1;
	return 0;
}

/* Saves and drops the secondary indexes of the tables we fill; load_indexes_build restores. */
static int
load_indexes_drop(struct load *l)
{
	sqlite3_stmt *st = load_prepare(l, "SELECT name, sql FROM sqlite_master WHERE type = "
					   "'index' AND sql IS NOT NULL AND tbl_name = ?1");
	char drop[256];

	if (st == NULL)
		return -1;
	for (int t = 0; load_tables[t] != NULL; t++) {
		sqlite3_bind_text(st, 1, load_tables[t], -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW && l->nindex < LOAD_MAX_INDEXES) {
			l->index_sql[l->nindex++] = strdup((const char *)sqlite3_column_text(st, 1));
			snprintf(drop, sizeof(drop), "DROP INDEX \"%s\"", sqlite3_column_text(st, 0));
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, load_tables[t], -1, SQLITE_STATIC);
			if (load_exec(l, drop) < 0) {
				sqlite3_finalize(st);
				return -1;
			}
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return 0;
}

static int
load_indexes_build(struct load *l)
{
	for (int i = 0; i < l->nindex; i++) {
		double t0 = load_now();

		if (load_exec(l, l->index_sql[i]) < 0)
			return -1;
		fprintf(stderr, "history_load: %.60s... %.1f s\n", l->index_sql[i], load_now() - t0);
	}
	return 0;
}

static int
load_parties(struct load *l, int64_t created_at)
{
	sqlite3_stmt *party = load_prepare(l, "INSERT INTO parties (id, kind, name, rrn, created_at)"
					      " VALUES (?1, 'person', ?2, ?3, ?4)");
	sqlite3_stmt *email = load_prepare(l, "INSERT INTO party_emails (email, party_id) VALUES "
					      "(?1, ?2)");
	sqlite3_stmt *phone = load_prepare(l, "INSERT INTO party_phones (phone, party_id) VALUES "
					      "(?1, ?2)");
	char name[64], rrn[32], mail[64], tel[32];
	int rc = -1;

	if (party == NULL || email == NULL || phone == NULL)
		goto out;
	/* Zero-padded identifiers sort like the ids: every insert appends to its B-tree. */
	for (long long id = 1; id <= l->parties; id++) {
		snprintf(name, sizeof(name), "Burger %lld", id);
		sqlite3_bind_int64(party, 1, id);
		sqlite3_bind_text(party, 2, name, -1, SQLITE_STATIC);
		if (id % 3 == 0) {
			snprintf(rrn, sizeof(rrn), "%011lld", 50000000000LL + id);
			sqlite3_bind_text(party, 3, rrn, -1, SQLITE_STATIC);
		} else {
			sqlite3_bind_null(party, 3);
		}
		sqlite3_bind_int64(party, 4, created_at);
		snprintf(mail, sizeof(mail), "burger%08lld@example.be", id);
		sqlite3_bind_text(email, 1, mail, -1, SQLITE_STATIC);
		sqlite3_bind_int64(email, 2, id);
		if (load_step(l, party) < 0 || load_step(l, email) < 0)
			goto out;
		if (id % 2 == 0) {
			snprintf(tel, sizeof(tel), "+32470%07lld", id);
			sqlite3_bind_text(phone, 1, tel, -1, SQLITE_STATIC);
			sqlite3_bind_int64(phone, 2, id);
			if (load_step(l, phone) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(party);
	sqlite3_finalize(email);
	sqlite3_finalize(phone);
	return rc;
}

static int
load_year_seq(struct load *l, int year, long long *seq_r)
{
	int i;

	for (i = 0; i < l->nyears && l->years[i].year != year; i++)
		;
	if (i == l->nyears) {
		if (l->nyears == LOAD_MAX_YEARS)
			return -1;
		l->years[l->nyears].year = year;
		l->years[l->nyears++].last = 0;
	}
	*seq_r = ++l->years[i].last;
	return 0;
}

static int
load_channel(struct load *l)
{
	int r = (int)(load_rand(l) % 100), i;

	for (i = 0; r >= load_channels[i].weight; i++)
		r -= load_channels[i].weight;
	return i;
}

static int
load_contacts(struct load *l, int64_t start_ms, int64_t end_ms)
{
	sqlite3_stmt *ins = load_prepare(l,
	    "INSERT INTO contacts (id, reference, channel, direction, received_at, handled_at,"
	    " updated_at, party_id, subject, body, product, department, organisation, line, status,"
	    " priority, tags, language, confidential, meta, created_by)"
	    " VALUES (?1, ?2, ?3, 'in', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'normal',"
	    " '[]', 'nl', 0, '{}', 'import')");
	sqlite3_stmt *hist = l->history ?
	    load_prepare(l, "INSERT INTO contact_history (contact_id, at, actor, action, from_status,"
			    " to_status, detail) VALUES (?1, ?2, 'import', 'created', NULL, ?3, ?4)") :
	    NULL;
	long long frequent = l->parties / 100 > 0 ? l->parties / 100 : 1;
	double step = (double)(end_ms - start_ms) / (double)l->contacts;
	double t0 = load_now();
	char ref[48], subject[256], body[1024];
	int rc = -1;

	if (ins == NULL || (l->history && hist == NULL))
		goto out;
	for (long long id = 1; id <= l->contacts; id++) {
		int64_t at = start_ms + (int64_t)((double)(id - 1) * step);
		time_t secs = (time_t)(at / 1000);
		uint64_t r = load_rand(l);
		int pick = (int)(r % 100), ch = load_channel(l);
		int dep = (int)((r >> 8) % 3), st = (int)((r >> 16) % 10);
		long long party = 0, seq;
		struct tm tm;

		gmtime_r(&secs, &tm);
		if (load_year_seq(l, tm.tm_year + 1900, &seq) < 0)
			goto out;
		snprintf(ref, sizeof(ref), "%04d-%06lld", tm.tm_year + 1900, seq);
		if (pick >= 5 && pick < 15)
			party = 1 + (long long)((r >> 24) % (uint64_t)frequent) * 100 %
					l->parties;
		else if (pick >= 15)
			party = 1 + (long long)((r >> 24) % (uint64_t)l->parties);
		if (l->words) {
			load_text(l, subject, sizeof(subject), 4);
			load_text(l, body, sizeof(body), 12);
		} else {
			snprintf(subject, sizeof(subject), "Vraag %lld over %s", id,
			    load_departments[dep].product);
			snprintf(body, sizeof(body), "%s", load_bodies[(r >> 32) % 5]);
		}
		sqlite3_bind_int64(ins, 1, id);
		sqlite3_bind_text(ins, 2, ref, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, load_channels[ch].channel, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, at);
		if (load_statuses[st].handled)
			sqlite3_bind_int64(ins, 5, at + 3600000);
		else
			sqlite3_bind_null(ins, 5);
		sqlite3_bind_int64(ins, 6, at + (load_statuses[st].handled ? 3600000 : 0));
		if (party != 0)
			sqlite3_bind_int64(ins, 7, party);
		else
			sqlite3_bind_null(ins, 7);
		sqlite3_bind_text(ins, 8, subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 9, body, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 10, load_departments[dep].product, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 11, load_departments[dep].department, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 12, load_departments[dep].organisation, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 13, load_statuses[st].line);
		sqlite3_bind_text(ins, 14, load_statuses[st].status, -1, SQLITE_STATIC);
		if (load_step(l, ins) < 0)
			goto out;
		if (hist != NULL) {
			sqlite3_bind_int64(hist, 1, id);
			sqlite3_bind_int64(hist, 2, at);
			sqlite3_bind_text(hist, 3, "open", -1, SQLITE_STATIC);
			sqlite3_bind_text(hist, 4, load_channels[ch].channel, -1, SQLITE_STATIC);
			if (load_step(l, hist) < 0)
				goto out;
		}
		l->counts[ch][st]++;
		if (id % 1000000 == 0)
			fprintf(stderr, "history_load: %lld contacts, %.0f/s\n", id,
			    (double)id / (load_now() - t0));
	}
	rc = 0;
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(hist);
	return rc;
}

static int
load_sequences(struct load *l)
{
	sqlite3_stmt *ref = load_prepare(l, "INSERT INTO refseq (year, last) VALUES (?1, ?2) ON "
					    "CONFLICT (year) DO UPDATE SET last = max(last, ?2)");
	sqlite3_stmt *cnt = load_prepare(l, "INSERT INTO counts (channel, status, n) VALUES (?1, ?2,"
					    " ?3) ON CONFLICT (channel, status) DO UPDATE SET n = n + ?3");
	int rc = -1;

	if (ref == NULL || cnt == NULL)
		goto out;
	for (int i = 0; i < l->nyears; i++) {
		sqlite3_bind_int(ref, 1, l->years[i].year);
		sqlite3_bind_int64(ref, 2, l->years[i].last);
		if (load_step(l, ref) < 0)
			goto out;
	}
	for (int ch = 0; ch < 4; ch++) {
		for (int st = 0; st < 10; st++) {
			if (l->counts[ch][st] == 0)
				continue;
			sqlite3_bind_text(cnt, 1, load_channels[ch].channel, -1, SQLITE_STATIC);
			sqlite3_bind_text(cnt, 2, load_statuses[st].status, -1, SQLITE_STATIC);
			sqlite3_bind_int64(cnt, 3, l->counts[ch][st]);
			if (load_step(l, cnt) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(ref);
	sqlite3_finalize(cnt);
	return rc;
}

static int
load_check_empty(struct load *l)
{
	sqlite3_stmt *st = load_prepare(l, "SELECT (SELECT count(*) FROM contacts) + "
					   "(SELECT count(*) FROM parties)");
	int n = -1;

	if (st == NULL)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (n != 0) {
		fprintf(stderr, "history_load: the register is not empty; start from one that "
				"loketd has just created\n");
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct load l = { 0 };
	const char *path = NULL;
	double t0, t_parties, t_contacts, t_index;
	int64_t end_ms, start_ms, years;
	struct timespec now;
	struct stat sb;
	int ch, rc = 1;

	l.contacts = 10000000;
	l.parties = 1000000;
	l.rng = 1;
	while ((ch = getopt(argc, argv, "f:n:p:s:HWSh")) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 'n':
			l.contacts = atoll(optarg);
			break;
		case 'p':
			l.parties = atoll(optarg);
			break;
		case 's':
			l.rng = strtoull(optarg, NULL, 10);
			break;
		case 'H':
			l.history = 1;
			break;
		case 'W':
			l.words = 1;
			break;
		case 'S':
			l.no_search = 1;
			break;
		default:
			fprintf(stderr, "usage: history_load -f REGISTER [-n CONTACTS] [-p PARTIES] "
					"[-s SEED] [-H] [-W] [-S]\n");
			return ch == 'h' ? 0 : 2;
		}
	}
	if (path == NULL || l.contacts < 1 || l.parties < 1) {
		fprintf(stderr, "history_load: -f REGISTER is required; -n and -p must be > 0\n");
		return 2;
	}
	if (access(path, W_OK) < 0) {
		fprintf(stderr, "history_load: %s: not a writable file; let loketd create the "
				"register first\n", path);
		return 2;
	}
	if (sqlite3_open_v2(path, &l.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "history_load: %s: %s\n", path, sqlite3_errmsg(l.db));
		goto out;
	}
	/* The search index's triggers call them, as on loketd's own writer connection. */
	if (sq_fold_functions(l.db) < 0) {
		fprintf(stderr, "history_load: cannot register the search index's SQL functions\n");
		goto out;
	}
	t0 = load_now();
	/* A bulk load into a scratch copy: no journal, no fsync, a big page cache. */
	if (load_exec(&l, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
			  "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -1048576;"
			  "PRAGMA temp_store = MEMORY; PRAGMA threads = 2") < 0 ||
	    load_check_empty(&l) < 0 || load_exec(&l, "BEGIN") < 0 ||
	    load_indexes_drop(&l) < 0 || (l.no_search && load_triggers_drop(&l) < 0))
		goto out;

	clock_gettime(CLOCK_REALTIME, &now);
	end_ms = (int64_t)now.tv_sec * 1000 - 60000;
	years = (l.contacts + LOAD_YEAR_MAX - 1) / LOAD_YEAR_MAX;
	start_ms = end_ms - years * 31557600000LL;

	if (load_parties(&l, start_ms) < 0)
		goto out;
	t_parties = load_now();
	if (load_contacts(&l, start_ms, end_ms) < 0 || load_sequences(&l) < 0)
		goto out;
	t_contacts = load_now();
	/* What the triggers queued goes into the search index as loketd's writer puts it. */
	if (load_exec(&l, SQ_FOLD_FLUSH_SQL) < 0 || load_indexes_build(&l) < 0 ||
	    load_triggers_make(&l) < 0 || load_exec(&l, "COMMIT") < 0)
		goto out;
	/* Hand the file back as loketd keeps it. */
	if (load_exec(&l, "PRAGMA journal_mode = DELETE; PRAGMA locking_mode = NORMAL") < 0 ||
	    load_exec(&l, "PRAGMA journal_mode = WAL") < 0)
		goto out;
	t_index = load_now();
	sqlite3_close(l.db);
	l.db = NULL;
	if (stat(path, &sb) < 0)
		sb.st_size = 0;
	printf("contacts=%lld parties=%lld years=%d seconds=%.1f parties_s=%.1f contacts_s=%.1f "
	       "index_s=%.1f rows_per_s=%.0f file_mib=%.0f\n",
	    l.contacts, l.parties, l.nyears, t_index - t0, t_parties - t0, t_contacts - t_parties,
	    t_index - t_contacts, (double)l.contacts / (t_index - t0),
	    (double)sb.st_size / 1048576.0);
	rc = 0;
out:
	for (int i = 0; i < l.nindex; i++)
		free(l.index_sql[i]);
	for (int i = 0; i < l.ntrigger; i++)
		free(l.trigger_sql[i]);
	if (l.db != NULL)
		sqlite3_close(l.db);
	return rc;
}
