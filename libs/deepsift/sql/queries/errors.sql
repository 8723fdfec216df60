-- Videos without a score (error or not_applicable) per scan date and reason, with an example URI.
-- :date  only this scan date (YYYY-MM-DD); default: every date
SELECT scan_date, verdict, reason, videos, example_uri
FROM error_breakdown
WHERE :date IS NULL OR scan_date = CAST(:date AS DATE)
ORDER BY scan_date DESC, videos DESC, reason
