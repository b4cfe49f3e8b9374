-- mbq's sample database for the demo (tools/demo.sh) and for tests that want
-- realistic data: products (200), users (1,000), orders (3,000) and
-- order_items (composite primary key, 6,000), about 10k rows in all.
--
-- Load it into an existing database:  mariadb mbq_demo < sql/sample/sample.sql
-- It drops and recreates its tables, so loading it twice gives the same data.
--
-- Deterministic: every value is computed from the row number (no RAND(), no
-- NOW()), so two loads hold identical rows and tests can assert on them.
-- Rows come from a cross join of digit tables rather than a recursive CTE,
-- which MySQL 8 caps at 1,000 levels (cte_max_recursion_depth) and MariaDB
-- configures under another name.
--
-- The column types are the mix mbq must map faithfully: BIGINT UNSIGNED
-- (including values beyond INT64), VARCHAR with non-ASCII text, DECIMAL(12,2),
-- ENUM, JSON, DATE, TINYINT(1), TEXT with NULLs, TIMESTAMP (UTC) and the
-- DATETIME(6) `updated_at` cursor maintained by ON UPDATE.

SET NAMES utf8mb4;
SET time_zone = '+00:00';

DROP TABLE IF EXISTS order_items;
DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS products;

CREATE TABLE products (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    sku         VARCHAR(32)     NOT NULL,
    name        VARCHAR(200)    NOT NULL,
    category    ENUM('books', 'games', 'garden', 'kitchen', 'toys') NOT NULL,
    price       DECIMAL(12,2)   NOT NULL,
    attributes  JSON            NULL,
    created_at  TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uk_products_sku (sku),
    KEY ix_products_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE users (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    email       VARCHAR(255)    NOT NULL,
    name        VARCHAR(100)    NOT NULL,
    status      ENUM('active', 'suspended', 'deleted') NOT NULL DEFAULT 'active',
    balance     DECIMAL(12,2)   NOT NULL DEFAULT 0.00,
    external_id BIGINT UNSIGNED NULL,
    birth_date  DATE            NULL,
    is_admin    TINYINT(1)      NOT NULL DEFAULT 0,
    preferences JSON            NULL,
    created_at  TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uk_users_email (email),
    KEY ix_users_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE orders (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id     BIGINT UNSIGNED NOT NULL,
    status      ENUM('pending', 'paid', 'shipped', 'cancelled') NOT NULL,
    total       DECIMAL(12,2)   NOT NULL,
    currency    CHAR(3)         NOT NULL DEFAULT 'EUR',
    note        TEXT            NULL,
    ordered_at  TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_orders_user (user_id),
    KEY ix_orders_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A composite primary key: one row per (order, line).
CREATE TABLE order_items (
    order_id    BIGINT UNSIGNED NOT NULL,
    line_no     SMALLINT UNSIGNED NOT NULL,
    product_id  BIGINT UNSIGNED NOT NULL,
    quantity    INT UNSIGNED    NOT NULL,
    unit_price  DECIMAL(12,2)   NOT NULL,
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (order_id, line_no),
    KEY ix_order_items_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- n = 1..10000 from four digit tables.
CREATE TEMPORARY TABLE _digits (d TINYINT UNSIGNED NOT NULL PRIMARY KEY);
INSERT INTO _digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
CREATE TEMPORARY TABLE _seq (n INT UNSIGNED NOT NULL PRIMARY KEY);
INSERT INTO _seq (n)
SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d
FROM _digits a CROSS JOIN _digits b CROSS JOIN _digits c CROSS JOIN _digits e;

INSERT INTO products (id, sku, name, category, price, attributes, created_at, updated_at)
SELECT n,
       CONCAT('SKU-', LPAD(n, 5, '0')),
       CONCAT(ELT(1 + n % 8, 'Classic', 'Deluxe', 'Mini', 'Große', 'Eco', 'Pro', 'Café', 'Retro'), ' ',
              ELT(1 + (n DIV 8) % 5, 'notebook', 'puzzle', 'trowel', 'kettle', 'robot'), ' #', n),
       ELT(1 + (n DIV 8) % 5, 'books', 'games', 'garden', 'kitchen', 'toys'),
       ROUND(1 + (n * 7919 % 50000) / 100, 2),
       CASE WHEN n % 10 = 0 THEN NULL
            ELSE JSON_OBJECT('color', ELT(1 + n % 4, 'red', 'green', 'blue', 'black'),
                             'weight_g', 50 + n * 37 % 2000,
                             'tags', JSON_ARRAY(CONCAT('t', n % 7), CONCAT('t', n % 11)))
       END,
       TIMESTAMP('2023-06-01 00:00:00') + INTERVAL n HOUR,
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL n * 37 SECOND + INTERVAL (n * 123457 % 1000000) MICROSECOND
FROM _seq WHERE n <= 200;

INSERT INTO users (id, email, name, status, balance, external_id, birth_date, is_admin, preferences,
                   created_at, updated_at)
SELECT n,
       CONCAT('user', n, '@example.com'),
       CONCAT(ELT(1 + n % 8, 'Ana', 'Björn', 'Chloé', 'Dmitri', 'Eun-ji', 'François', 'Grzegorz', 'Zoë'), ' ',
              ELT(1 + (n DIV 8) % 6, 'Silva', 'Müller', 'O''Brien', 'Nakamura', 'García', 'Nguyễn')),
       ELT(1 + (CASE WHEN n % 50 = 0 THEN 2 WHEN n % 97 = 0 THEN 1 ELSE 0 END), 'active', 'suspended', 'deleted'),
       ROUND((n * 104729 % 2000000) / 100 - 5000, 2),
       -- every 100th user has an id beyond INT64's range (BIGINT UNSIGNED)
       CASE WHEN n % 100 = 0 THEN 18446744073709551615 - n
            WHEN n % 3 = 0 THEN NULL
            ELSE n * 1000003 END,
       CASE WHEN n % 7 = 0 THEN NULL ELSE DATE('1950-01-01') + INTERVAL (n * 263 % 20000) DAY END,
       IF(n % 250 = 0, 1, 0),
       JSON_OBJECT('newsletter', n % 2 = 0,
                   'theme', ELT(1 + n % 3, 'light', 'dark', 'auto'),
                   'lang', ELT(1 + n % 4, 'en', 'de', 'fr', 'ja')),
       TIMESTAMP('2023-01-01 00:00:00') + INTERVAL n * 3 HOUR,
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL n * 41 SECOND + INTERVAL (n * 654321 % 1000000) MICROSECOND
FROM _seq WHERE n <= 1000;

INSERT INTO orders (id, user_id, status, total, currency, note, ordered_at, updated_at)
SELECT n,
       1 + (n * 7 % 1000),
       ELT(1 + n % 4, 'pending', 'paid', 'shipped', 'cancelled'),
       ROUND((n * 15485863 % 100000) / 100 + 0.99, 2),
       ELT(1 + n % 3, 'EUR', 'USD', 'GBP'),
       CASE WHEN n % 5 = 0 THEN CONCAT('leave at door; "fragile"\nline 2 of order ', n) ELSE NULL END,
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL n * 13 MINUTE,
       -- some orders share an updated_at: the cursor's ties at a boundary
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL (n DIV 3) * 29 SECOND
FROM _seq WHERE n <= 3000;

INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, updated_at)
SELECT 1 + (n - 1) DIV 2,
       1 + (n - 1) % 2,
       1 + (n * 31 % 200),
       1 + n % 5,
       ROUND(1 + (n * 7919 % 50000) / 100, 2),
       TIMESTAMP('2024-01-01 00:00:00') + INTERVAL ((n - 1) DIV 2) DIV 3 * 29 SECOND
FROM _seq WHERE n <= 6000;

DROP TEMPORARY TABLE _seq;
DROP TEMPORARY TABLE _digits;
