import t from 'tap'
import { normalize } from '../../scripts/db-schema/dump.js'

// A pg_dump of the shape 15.14+ writes: the random \restrict key, version comments, session SETs.
const dump = (version: string, key: string, owner: string) => `--
-- PostgreSQL database dump
--

\\restrict ${key}

-- Dumped from database version ${version}
-- Dumped by pg_dump version ${version}

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

--
-- Name: EXTENSION pg_trgm; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';

CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
    begin
      -- a comment inside a body stays
      return 1;
    end $$;


SET default_table_access_method = heap;

CREATE TABLE public.t (
    id integer NOT NULL
);

COMMENT ON COLUMN public.t.id IS 'kept: a comment a migration wrote';

GRANT SELECT ON TABLE public.t TO crm_app;

ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA public GRANT SELECT ON TABLES  TO crm_app;

\\unrestrict ${key}
`

t.test('two dumps of the same schema by other minor versions, runs and login users normalize to the same text', async (t) => {
  const a = normalize(dump('15.20 (Debian 15.20-0+deb12u1)', 'C3Z0ELmZR8QGbZDU1Bg9', 'postgres'), 'postgres')
  const b = normalize(dump('15.8', 'x9Qk2LmZR8QGbZDU1Bg9', 'ci_runner'), 'ci_runner')
  t.equal(a, b)
  t.notMatch(a, /Dumped|restrict|^SET |set_config|COMMENT ON EXTENSION|\n\n\n/m)
  t.match(a, /ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public/)
  t.match(a, /-- a comment inside a body stays/)
  t.match(a, /    SET search_path TO 'pg_catalog'/, "a function's own SET clause stays")
  t.match(a, /COMMENT ON COLUMN public\.t\.id/)
  t.match(a, /GRANT SELECT ON TABLE public\.t TO crm_app;/)
  t.ok(a.endsWith(');\n\nCOMMENT ON COLUMN public.t.id IS \'kept: a comment a migration wrote\';\n\nGRANT SELECT ON TABLE public.t TO crm_app;\n\nALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public GRANT SELECT ON TABLES  TO crm_app;\n'))
})
