# Sourced by bench/run.sh and bench/extract/run.sh: the benchmark table, the
# same in both. `bench_table_sql TABLE ROWS` prints the SQL that (re)creates
# TABLE with ROWS deterministic rows of mixed types (bigint unsigned PK, int,
# enum, decimal(12,2), varchar(200), json, datetime(6), timestamp(6)); the
# rows come from MariaDB's seq_1_to_N engine.
bench_table_sql() {
    cat <<SQL
DROP TABLE IF EXISTS $1;
CREATE TABLE $1 (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, qty INT NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL, price DECIMAL(12,2) NOT NULL,
  note VARCHAR(200) NOT NULL, attrs JSON, created_at DATETIME(6) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT '2000-01-01 00:00:00', KEY (updated_at));
SET time_zone = '+00:00';
INSERT INTO $1 SELECT seq, seq % 1000, 1 + seq % 4, (seq % 100000) / 100,
  CONCAT('note ', seq, ' ', REPEAT(CHAR(97 + seq % 26), 20 + seq % 100)),
  JSON_OBJECT('k', seq % 17, 'tags', JSON_ARRAY('a', seq % 5), 's', CONCAT('v', seq)),
  '2024-01-01' + INTERVAL seq SECOND + INTERVAL (seq % 1000000) MICROSECOND,
  '2024-06-01' + INTERVAL seq SECOND + INTERVAL (seq % 999999) MICROSECOND
FROM seq_1_to_$2;
SQL
}
