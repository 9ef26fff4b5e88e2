import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commandMessage, describeReply, pushCommand } from '../../src/cli/chat.js';
import { image, music, news, text, transferCustomerService, video, voice } from '../../src/wechat/replies.js';

describe('npm run chat', () => {
  it('commands stand for messages and events', () => {
    expect(commandMessage('/click V1001_TODAY')).toEqual({ MsgType: 'event', Event: 'CLICK', EventKey: 'V1001_TODAY' });
    expect(commandMessage('/subscribe')).toEqual({ MsgType: 'event', Event: 'subscribe' });
    expect(commandMessage('/subscribe c42')).toMatchObject({ Event: 'subscribe', EventKey: 'qrscene_c42' });
    expect(commandMessage('/scan c42')).toMatchObject({ Event: 'SCAN', EventKey: 'c42' });
    expect(commandMessage('/voice 明天 天气')).toMatchObject({ MsgType: 'voice', Recognition: '明天 天气' });
    expect(commandMessage('/location 31.2 121.4 上海 黄浦')).toMatchObject({ MsgType: 'location', Location_X: '31.2', Location_Y: '121.4', Label: '上海 黄浦' });
    expect(commandMessage('/click')).toEqual({ usage: '/click KEY' });
    expect(commandMessage('/nope')).toEqual({ usage: 'unknown command /nope: /help lists them' });
  });

  it('/push names a push dialog, its JSON input, and ! to interrupt', () => {
    expect(pushCommand('/push order-confirmation {"orderId":"1","total":2}')).toEqual({ dialog: 'order-confirmation', input: { orderId: '1', total: 2 }, ifActive: 'refuse' });
    expect(pushCommand('/push notice!')).toEqual({ dialog: 'notice', input: {}, ifActive: 'interrupt' });
    expect(pushCommand('/push')).toMatchObject({ usage: expect.stringMatching(/^usage: \/push DIALOG/) });
    expect(pushCommand('/push x {nope')).toMatchObject({ usage: expect.stringMatching(/not JSON/) });
  });

  it('replies show as text, other types in brackets', () => {
    expect(describeReply(undefined)).toBe('(no reply: WeChat gets "success")');
    expect(describeReply(text('你好'))).toBe('你好');
    expect(describeReply(news([{ Title: 'T', Description: 'D', PicUrl: 'p', Url: 'https://u' }]))).toBe('[news] T: D <https://u>');
    expect(describeReply(image('M'))).toBe('[image M]');
    expect(describeReply(voice('M'))).toBe('[voice M]');
    expect(describeReply(video('M', { Title: 'T' }))).toBe('[video M "T"]');
    expect(describeReply(music({ ThumbMediaId: 'T', Title: 'Song', MusicUrl: 'https://m' }))).toBe('[music Song https://m]');
    expect(describeReply(transferCustomerService('a@b'))).toBe('[transferred to customer service a@b]');
  });

  it('holds a conversation with the demo dialogs on stdin/stdout', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'chat', '--router', 'dialogs/router.ts'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stdin.end('累加器\n2\n40\n2\n/click V1001\n/unsubscribe\n/quit\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    const replies = out.split('> ').map((s) => s.trim()).filter((s) => s !== '');
    expect(replies.slice(1, 5)).toEqual(['您需要累加几个数字？', '请输入第1个数字, 目前累加和:0', '请输入第2个数字, 目前累加和:40', '累加结束，累加和: 42']);
    expect(replies[5]).toMatch(/^这个公众号是wechat-dialog项目的demo/);
    expect(replies[6]).toBe('(no reply: WeChat gets "success")');
  }, 20_000);

  it('/push starts a push dialog; the answer continues it', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'chat', '--router', 'dialogs/router.ts'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stdin.end('/push order-confirmation {"orderId":"123","total":88.5}\n1\n/push order-confirmation {"total":1}\n/quit\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    const replies = out.split('> ').map((s) => s.trim()).filter((s) => s !== '');
    expect(replies.slice(1, 4)).toEqual([
      '[customer-service message] 确认订单 #123（88.50 元）？回复 1 确认，2 取消',
      '订单 #123 已确认，感谢！',
      expect.stringMatching(/^error: push\(\): the input was refused: orderId: /),
    ]);
  }, 20_000);
});
