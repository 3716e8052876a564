-- The tables prediction capture writes and the outcomes report reads (docs/outcomes.md).
-- Safe to run again: nothing is dropped, what exists is kept.
--   psql "$CAPTURE_DATABASE_URL" -f churn/sql/outcomes.sql
--   or: python -m churn.outcomes init --database "$CAPTURE_DATABASE_URL"

-- One row per answered customer: by /predict (source 'predict') or a score.py run ('score.py').
CREATE TABLE IF NOT EXISTS churn_predictions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    predicted_at  timestamptz      NOT NULL,
    request_id    text             NOT NULL,  -- X-Request-ID; a score.py run's own id
    customer_id   text,                       -- null when the request carried none
    model_version text             NOT NULL,  -- the model artifact's SHA-256
    probability   double precision NOT NULL,
    churn         boolean          NOT NULL,  -- the decision: probability >= threshold
    threshold     double precision NOT NULL,
    source        text             NOT NULL CHECK (source IN ('predict', 'score.py')),
    features      jsonb                       -- the customer as sent; only with CAPTURE_FEATURES=1
);
-- The report joins predictions to outcomes by customer and time.
CREATE INDEX IF NOT EXISTS churn_predictions_customer ON churn_predictions (customer_id, predicted_at);

-- What the CRM observed later. One row per customer and date: loading a file twice, or two
-- files that overlap, never counts an outcome twice (a later load corrects `churned`).
CREATE TABLE IF NOT EXISTS churn_outcomes (
    customer_id text        NOT NULL,
    observed_on date        NOT NULL,
    churned     boolean     NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, observed_on)
);
