/**
 * 会话菜单: a one-question menu. Any answer other than 1 or 2 is handed back to the router, so
 * "累加器" starts the accumulator and anything unknown gets the help text.
 */
import { defineDialog, handBack, text } from '../src/index.js';

const CHOICES: Readonly<Record<string, string>> = { '1': '苹果', '2': '香蕉' };

export const menu = defineDialog('menu', function* () {
  const answer = yield text(
    '菜单：\n1. 苹果\n2. 香蕉\n回复数字选择，如果回复的内容不合法会直接跳转，比如回复"累加器"会直接跳转到累加器对话。',
  );
  const choice = answer.MsgType === 'text' ? CHOICES[answer.Content] : undefined;
  if (choice === undefined) return handBack();
  return text(`您选择的是：${choice}`);
});
