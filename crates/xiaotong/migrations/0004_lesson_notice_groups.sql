-- A parent-notice job may carry the notices of a whole group of check-ins,
-- so a notice is unique per job, parent and student (a parent with two
-- children in one class gets both).
CREATE UNIQUE INDEX lesson_notices_job_student ON lesson_notices (job_id, parent_id, student_id);
DROP INDEX lesson_notices_job ON_TABLE(lesson_notices);
