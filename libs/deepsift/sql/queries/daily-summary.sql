-- Videos per scan date, model version, verdict and reason, newest date first.
-- :date  only this scan date (YYYY-MM-DD); default: every date
SELECT scan_date, model_name, model_version, verdict, reason, videos
FROM daily_summary
WHERE :date IS NULL OR scan_date = CAST(:date AS DATE)
ORDER BY scan_date DESC, model_name, model_version DESC, verdict, reason
